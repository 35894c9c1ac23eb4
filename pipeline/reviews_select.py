"""Pick the published reviews of every node (sql/select_reviews.sql, DuckDB).

Up to ``max_reviews`` texts per node, most helpful first, then most recent, then a stable
tiebreak, so the choice and order are the same on every run. DuckDB streams the reviews
file, so this works on dumps far larger than memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipeline.db import connect
from pipeline.sql import load_sql

DEFAULT_MAX_REVIEWS = 25


def select_reviews(
    reviews_path: Path | str,
    asins: Sequence[str],
    max_reviews: int = DEFAULT_MAX_REVIEWS,
    memory_limit: str | None = None,
    temp_directory: Path | str | None = None,
    threads: int | None = None,
) -> pl.DataFrame:
    """Columns asin, reviews (list of texts, best first), n_reviews; one row per node with
    at least one non-empty review, sorted by asin. Nodes without reviews are absent."""
    if max_reviews < 0:
        raise ValueError(f"max_reviews must be >= 0, got {max_reviews}")
    schema = {"asin": pl.String, "reviews": pl.List(pl.String), "n_reviews": pl.Int64}
    if max_reviews == 0 or not asins:
        return pl.DataFrame(schema=schema)
    # pipeline.db: the memory limit and spill directory every stage shares (the arguments,
    # else ACMMG_DUCKDB_*, else pipeline.db.DEFAULT_MEMORY_LIMIT); the sort of the texts
    # spills past it.
    con = connect(memory_limit, temp_directory, threads)
    try:
        nodes = pl.DataFrame({"asin": list(asins)}, schema={"asin": pl.String}).to_arrow()
        con.register("nodes", nodes)
        out = con.sql(
            load_sql("select_reviews.sql"),
            params={"reviews_path": str(reviews_path), "max_reviews": int(max_reviews)},
        ).pl()
    finally:
        con.close()
    return out.cast(schema)
