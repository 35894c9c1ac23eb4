"""Each stage's counts, one file per stage, and their merged view.

The runner writes what a stage returns to ``work/stats/<stage>.json``, as the fragment it
contributes to the build's statistics: ingest and graph put their counters at the top level
(``reviews_read``, ``edges``...), the others under one key of their own (``{"images": ...}``).
Nothing is read-modify-written: a stage owns its file, and :func:`merged` is the union the
manifest and the card show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import workdir
from pipeline.errors import StageError
from pipeline.io import read_json, write_json


def fragment(key: str, result: Any) -> dict:
    """What a stage contributes: ``result`` itself (key "") or ``{key: result}``."""
    if key == "":
        if not isinstance(result, dict):
            raise TypeError("a stage whose stats go to the top level must return a dict")
        return dict(result)
    return {key: result}


def record(work: Path, stage: str, key: str, result: Any) -> Path:
    """Write one stage's fragment atomically; returns the file."""
    path = workdir.stats_file(work, stage)
    write_json(path, fragment(key, result))
    return path


def merged(work: Path) -> dict:
    """The union of every stage's fragment (a key claimed twice is an error: two stages
    must not report the same counter)."""
    out: dict = {}
    owner: dict[str, str] = {}
    folder = Path(work) / workdir.STATS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        for k, v in read_json(path).items():
            if k in owner:
                raise StageError(f"stats key {k!r} is reported by {owner[k]} and {path.stem}")
            owner[k] = path.stem
            out[k] = v
    return out


def files(work: Path) -> list[Path]:
    """Every stage's stats file (what a stage that reads the merged stats depends on)."""
    folder = Path(work) / workdir.STATS_DIR
    return sorted(folder.glob("*.json")) if folder.is_dir() else []
