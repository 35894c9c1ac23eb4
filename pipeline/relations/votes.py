"""Per-edge relations: the clusters of each final edge's co-buyers (sql/relations_edge_votes.sql,
sql/edge_relations.sql), and the nearest relation for an edge nobody clustered bought."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.db import count
from pipeline.sql import execute_script, load_sql

log = logging.getLogger(__name__)


def edge_votes(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, int]:
    """One row per final edge (src_asin, dst_asin, relation_id, relation_users,
    majority_users, relation_ids, relation_shares), sorted; relation_id null where no
    clustered user bought both ends. Also returns the pair instances formed (the work)."""
    execute_script(con, "relations_edge_votes")
    formed = count(con, "SELECT sum(len(items) * (len(items) - 1) // 2) FROM vote_baskets")
    votes = con.sql(load_sql("edge_relations")).fetchnumpy()
    edges = pl.from_arrow(
        con.sql("SELECT src_asin, dst_asin, i, j FROM edge_ids ORDER BY src_asin, dst_asin").arrow()
    )
    return edges.join(
        edge_distributions(votes), on=["i", "j"], how="left", maintain_order="left"
    ).with_columns(pl.col("relation_users", "majority_users").fill_null(0)).drop("i", "j"), formed


def edge_distributions(votes: dict[str, np.ndarray]) -> pl.DataFrame:
    """Each voted edge's relation distribution from its votes (arrays i, j, cluster, n, share),
    sorted by edge and, within one, in distribution order: one row per edge with the ids
    and shares (the top first), the majority, its co-buyers and all co-buyers. Lists are
    cut from the flat arrays by offsets (no per-edge Python objects, no hash grouping)."""
    i, j = votes["i"].astype(np.int64), votes["j"].astype(np.int64)
    cluster, n = votes["cluster"].astype(np.int64), votes["n"].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])]) if len(i) else i
    offsets = pa.array(np.r_[starts, len(i)].astype(np.int32))
    return pl.from_arrow(
        pa.table(
            {
                "i": i[starts],
                "j": j[starts],
                "relation_id": cluster[starts],
                "relation_users": np.add.reduceat(n, starts) if len(i) else n,
                "majority_users": n[starts],
                "relation_ids": pa.ListArray.from_arrays(offsets, pa.array(cluster)),
                "relation_shares": pa.ListArray.from_arrays(
                    offsets, pa.array(votes["share"].astype(np.float64))
                ),
            }
        )
    )


def nearest_relation(
    con: duckdb.DuckDBPyConnection, edges: pl.DataFrame, cents: np.ndarray
) -> pl.DataFrame:
    """Give edges without a clustered co-buyer the relation whose centroid is nearest their
    own mix (half each endpoint's vocabulary column; lowest id on ties), as a one-relation
    distribution. Tables expected: vocab, vocab_items (sql/relations_counted.sql)."""
    orphans = edges.filter(pl.col("relation_id").is_null()).select("src_asin", "dst_asin")
    if orphans.height == 0:
        return edges
    con.register("orphans", orphans.to_arrow())
    ends = con.sql(
        "SELECT o.src_asin, o.dst_asin, coalesce(vs.col, x.col) AS cs, coalesce(vd.col, x.col) "
        "AS cd FROM orphans AS o LEFT JOIN vocab_items AS vs ON vs.asin = o.src_asin "
        "LEFT JOIN vocab_items AS vd ON vd.asin = o.dst_asin "
        "LEFT JOIN (SELECT col FROM vocab WHERE key IS NULL) AS x ON true "
        "ORDER BY o.src_asin, o.dst_asin"
    ).pl()
    con.unregister("orphans")
    vec = np.zeros((ends.height, cents.shape[1]))
    for end in ("cs", "cd"):
        col = ends[end].to_numpy(allow_copy=True)
        has = ~ends[end].is_null().to_numpy()
        np.add.at(vec, (np.flatnonzero(has), col[has].astype(np.int64)), 0.5)
    dist = ((vec[:, None, :] - cents[None, :, :]) ** 2).sum(axis=2)
    nearest = ends.select("src_asin", "dst_asin").with_columns(
        fallback_id=pl.Series(np.argmin(dist, axis=1).astype(np.int64))
    )
    log.info("relations: %d edge(s) have no clustered co-buyer; nearest centroid used", len(ends))
    return (
        edges.join(nearest, on=["src_asin", "dst_asin"], how="left")
        .with_columns(
            relation_id=pl.coalesce("relation_id", "fallback_id"),
            relation_ids=pl.coalesce("relation_ids", pl.concat_list("fallback_id")),
            relation_shares=pl.coalesce(
                "relation_shares",
                pl.when(pl.col("fallback_id").is_not_null()).then(pl.concat_list(pl.lit(1.0))),
            ),
        )
        .drop("fallback_id")
        .sort("src_asin", "dst_asin")
    )
