"""``node_categories.json``: {"<class index>": "<class name>"}."""

from __future__ import annotations

import json
from pathlib import Path

FILE = "node_categories.json"


def write_node_categories(dest: Path, class_names: dict[int, str]) -> None:
    text = json.dumps({str(k): v for k, v in class_names.items()}, indent=2, ensure_ascii=False)
    (dest / FILE).write_text(text + "\n")
