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
    con.execute("DROP TABLE vote_baskets")  # DuckDB's memory, before Python's grows
    votes = con.sql(load_sql("edge_relations")).fetchnumpy()
    con.execute("DROP TABLE edge_votes")
    edges = con.sql(
        "SELECT src_asin, dst_asin, i, j FROM edge_ids ORDER BY src_asin, dst_asin"
    ).to_arrow_table()
    return pl.from_arrow(edge_distributions(edges, votes)), formed


def _pair_key(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return (np.asarray(i, dtype=np.int64) << 32) | np.asarray(j, dtype=np.int64)


def edge_distributions(edges: pa.Table, votes: dict[str, np.ndarray]) -> pa.Table:
    """Each edge's relation distribution (``edges``: src_asin, dst_asin, i, j) from the votes
    (arrays i, j, cluster, n, share sorted by edge and, within one, in distribution order):
    the ids and shares (the top first), the majority and its co-buyers, all co-buyers; nulls
    (users 0) for an edge without votes. Lists are cut from the flat arrays by offsets and
    matched to the edges by a sorted search: no per-edge Python objects, no hash tables."""
    i, j = votes["i"].astype(np.int64), votes["j"].astype(np.int64)
    cluster, n = votes["cluster"].astype(np.int64), votes["n"].astype(np.int64)
    key = _pair_key(i, j)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key
    offsets = pa.array(np.r_[starts, len(key)].astype(np.int32))
    groups = pa.table(
        {
            "relation_id": cluster[starts],
            "relation_users": np.add.reduceat(n, starts) if len(key) else n,
            "majority_users": n[starts],
            "relation_ids": pa.ListArray.from_arrays(offsets, pa.array(cluster)),
            "relation_shares": pa.ListArray.from_arrays(
                offsets, pa.array(votes["share"].astype(np.float64))
            ),
        }
    )
    edge_key = _pair_key(edges["i"].to_numpy(), edges["j"].to_numpy())
    pos = np.minimum(np.searchsorted(key[starts], edge_key), max(len(starts) - 1, 0))
    hit = key[starts][pos] == edge_key if len(starts) else np.zeros(len(edge_key), bool)
    out = groups.take(pa.array(pos, mask=~hit))
    for name in ("relation_users", "majority_users"):
        filled = np.where(hit, out[name].to_numpy(zero_copy_only=False), 0).astype(np.int64)
        out = out.set_column(out.schema.get_field_index(name), name, pa.array(filled))
    return pa.table(
        {"src_asin": edges["src_asin"], "dst_asin": edges["dst_asin"]}
        | {name: out[name] for name in out.column_names}
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
