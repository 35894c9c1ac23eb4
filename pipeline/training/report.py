"""Run-folder outputs: floats rounded for stable JSON, tables as CSV (written atomically)."""

from __future__ import annotations

import csv
import os
from typing import Any

from pipeline.io import atomic_path


def rounded(obj: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` significant digits (a learning rate of 1.25e-05 stays one)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v, digits) for v in obj]
    return obj


def write_csv(dest: str | os.PathLike, rows: list[dict]) -> None:
    """Rows as CSV, columns in first-seen order; a value a row lacks is left empty."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(dest) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
