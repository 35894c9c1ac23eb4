"""``node_attributes/node_attributes_<k>.parquet``: the ACMMG node table, in shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.publish.writers.parquet import write_parquet
from pipeline.reviews_select import select_reviews

FOLDER = "node_attributes"
# The ACMMG card's columns, in its order.
NODE_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("title", pa.string()),
        ("desc", pa.list_(pa.string())),
        ("class", pa.int64()),
        ("reviews", pa.list_(pa.string())),
        ("node_id", pa.int64()),
    ]
)
# What the folder's shards hold: the ACMMG columns, then the extras (nullable): image_url,
# the item's image URL as in its metadata (the source of its images.tar member).
PUBLISHED_NODE_SCHEMA = NODE_SCHEMA.append(pa.field("image_url", pa.string()))


def write_node_attributes(
    dest: Path,
    attrs: pl.DataFrame,
    reviews: Path,
    shard_rows: int,
    max_reviews: int,
    db: dict | None = None,
) -> tuple[int, np.ndarray]:
    """``attrs`` (asin, node_id, class, title, desc, image_url; node order) with each node's reviews
    from ``reviews``, ``shard_rows`` nodes per file, one shard at a time (reviews are the bulk
    of the bytes); ``db``: the review selection's DuckDB settings (``pipeline.db.settings``).
    Returns the shard count and the review count of every node."""
    (dest / FOLDER).mkdir()
    review_counts = np.zeros(attrs.height, dtype=np.int64)
    shards = 0
    for start in range(0, attrs.height, shard_rows):
        part = attrs.slice(start, shard_rows)
        rev = select_reviews(reviews, part["asin"].to_list(), max_reviews=max_reviews, **(db or {}))
        part = part.join(
            rev.select("asin", "reviews"), on="asin", how="left", maintain_order="left"
        )
        part = part.with_columns(pl.col("reviews").fill_null([]))
        review_counts[start : start + part.height] = part["reviews"].list.len().to_numpy()
        table = part.select(PUBLISHED_NODE_SCHEMA.names).to_arrow().cast(PUBLISHED_NODE_SCHEMA)
        write_parquet(table, dest / FOLDER / f"node_attributes_{shards}.parquet")
        shards += 1
    return shards, review_counts
