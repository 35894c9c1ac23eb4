"""``splits.parquet``: node_id, asin, split ("train" | "val" | "test")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipeline.publish.writers.parquet import write_parquet
from pipeline.splits import split_labels

FILE = "splits.parquet"


def write_splits(
    dest: Path, asins: list[str], train: np.ndarray, val: np.ndarray, test: np.ndarray
) -> None:
    splits = pl.DataFrame(
        {
            "node_id": np.arange(len(asins), dtype=np.int64),
            "asin": asins,
            "split": split_labels(train, val, test),
        }
    )
    write_parquet(splits.to_arrow(), dest / FILE)
