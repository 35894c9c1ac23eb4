"""``relations.json``: the RCML relation texts, as the relations stage wrote them."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.io import read_json

FILE = "relations.json"


def write_relations(dest: Path, relations_json: Path | None) -> dict | None:
    """A copy of ``relations_json`` (None: no relations, nothing written); returns its
    content."""
    if relations_json is None:
        return None
    shutil.copyfile(relations_json, dest / FILE)
    return read_json(dest / FILE)
