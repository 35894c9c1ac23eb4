"""Run-folder outputs: floats rounded for stable JSON, tables as CSV (written atomically)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import atomic_path, write_json


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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def average(results: list[dict]) -> tuple[dict, dict]:
    """(mean, standard deviation) of several runs' metrics, leaf by leaf: numbers averaged,
    other values kept where all runs agree (left out where they differ)."""
    mean: dict = {}
    std: dict = {}
    for k in results[0]:
        vals = [r[k] for r in results if k in r]
        if len(vals) < len(results):
            continue
        if all(isinstance(v, dict) for v in vals):
            m, s = average(vals)
            mean[k] = m
            if s:
                std[k] = s
        elif all(v == vals[0] for v in vals):
            mean[k] = vals[0]  # a count or a name every run shares stays as it is
            if _is_number(vals[0]):
                std[k] = 0.0
        elif all(_is_number(v) for v in vals):
            mean[k] = float(np.mean(vals))
            std[k] = float(np.std(vals))
    return mean, std


def write_average(out: Path, results: dict[int, dict]) -> dict:
    """OUT/metrics.json of a several-seed run: mean and std of each metric, and the seeds."""
    mean, std = average(list(results.values()))
    summary = rounded({"seeds": sorted(results), "mean": mean, "std": std})
    summary["runs"] = [f"seed-{s}" for s in sorted(results)]
    write_json(out / "metrics.json", summary)
    return summary
