"""Per-edge relations: the clusters of each final edge's co-buyers (sql/relations_edge_votes.sql,
sql/edge_relations.sql), and the nearest relation for an edge nobody clustered bought."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import polars as pl

from pipeline.db import count
from pipeline.errors import UserError
from pipeline.sql import execute_script, load_sql

log = logging.getLogger(__name__)


def edge_votes(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, int]:
    """One row per final edge (src_asin, dst_asin, relation_id, relation_users,
    majority_users), sorted; relation_id null where no clustered user bought both ends.
    Also returns the pair instances formed (the work done)."""
    execute_script(con, "relations_edge_votes")
    formed = count(con, "SELECT sum(len(items) * (len(items) - 1) // 2) FROM vote_baskets")
    return con.sql(load_sql("edge_relations")).pl(), formed


def nearest_relation(
    con: duckdb.DuckDBPyConnection,
    edges: pl.DataFrame,
    cents: np.ndarray,
    class_ids: list[int],
) -> pl.DataFrame:
    """Give edges without a clustered co-buyer the relation nearest their class mix."""
    orphans = edges.filter(pl.col("relation_id").is_null()).select("src_asin", "dst_asin")
    if orphans.height == 0:
        return edges
    con.register("orphans", orphans.to_arrow())
    cls = con.sql(
        "SELECT o.src_asin, o.dst_asin, cs.class AS cs, cd.class AS cd FROM orphans AS o "
        "JOIN classes AS cs ON cs.asin = o.src_asin JOIN classes AS cd ON cd.asin = o.dst_asin "
        "ORDER BY o.src_asin, o.dst_asin"
    ).pl()
    con.unregister("orphans")
    if cls.height != orphans.height:
        raise UserError("an edge endpoint has no class in classes.parquet")
    col = {c: i for i, c in enumerate(class_ids)}
    vec = np.zeros((cls.height, len(class_ids)))
    rows = np.arange(cls.height)
    for end in ("cs", "cd"):
        np.add.at(vec, (rows, cls[end].replace_strict(col).to_numpy()), 0.5)
    dist = ((vec[:, None, :] - cents[None, :, :]) ** 2).sum(axis=2)
    nearest = pl.DataFrame(
        {
            "src_asin": cls["src_asin"],
            "dst_asin": cls["dst_asin"],
            "fallback_id": np.argmin(dist, axis=1).astype(np.int64),
        }
    )
    log.info("relations: %d edge(s) have no clustered co-buyer; nearest centroid used", len(cls))
    return (
        edges.join(nearest, on=["src_asin", "dst_asin"], how="left")
        .with_columns(pl.coalesce("relation_id", "fallback_id").alias("relation_id"))
        .drop("fallback_id")
        .sort("src_asin", "dst_asin")
    )
