"""``edges.parquet``: src < dst node ids, one row per undirected edge, weight [, relations]."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.publish.writers.parquet import write_parquet

FILE = "edges.parquet"


def write_edges(dest: Path, edges: pl.DataFrame) -> None:
    write_parquet(edges.to_arrow(), dest / FILE)
