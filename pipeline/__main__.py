"""``python -m pipeline`` runs the acmmg command line."""

import sys

from pipeline.cli import main

sys.exit(main())
