"""The relations stage's previous implementation of its two heavy steps, kept as oracles for
the tests and as the baseline of bench/bench_relations.py: the co-buyer vote as one join of
every edge with every buyer of its source item, and the dense users x classes share matrix.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

# Views expected: edges(src_asin, dst_asin), bipartite(user_id, asin),
# user_clusters(user_id, cluster). Same columns and order as sql/edge_relations.sql.
JOIN_VOTE_SQL = """
WITH graph_asins AS (
    SELECT src_asin AS asin FROM edges
    UNION
    SELECT dst_asin AS asin FROM edges
),
buyers AS (
    SELECT DISTINCT b.user_id, b.asin, u.cluster
    FROM bipartite AS b
    JOIN user_clusters AS u ON u.user_id = b.user_id
    JOIN graph_asins AS g ON g.asin = b.asin
),
votes AS (
    SELECT e.src_asin, e.dst_asin, s.cluster, count(*) AS n
    FROM edges AS e
    JOIN buyers AS s ON s.asin = e.src_asin
    JOIN buyers AS d ON d.user_id = s.user_id AND d.asin = e.dst_asin
    GROUP BY e.src_asin, e.dst_asin, s.cluster
),
ranked AS (
    SELECT
        src_asin,
        dst_asin,
        cluster,
        n,
        sum(n) OVER (PARTITION BY src_asin, dst_asin) AS total,
        row_number() OVER (
            PARTITION BY src_asin, dst_asin ORDER BY n DESC, cluster ASC
        ) AS rk
    FROM votes
)
SELECT
    e.src_asin,
    e.dst_asin,
    r.cluster::BIGINT AS relation_id,
    coalesce(r.total, 0)::BIGINT AS relation_users,
    coalesce(r.n, 0)::BIGINT AS majority_users
FROM edges AS e
LEFT JOIN ranked AS r
    ON r.src_asin = e.src_asin AND r.dst_asin = e.dst_asin AND r.rk = 1
ORDER BY e.src_asin, e.dst_asin
"""

# The rows the join forms before its second probe: one per edge per buyer of the source.
JOIN_VOTE_ROWS_SQL = """
WITH buyers AS (
    SELECT DISTINCT b.user_id, b.asin FROM bipartite AS b
    JOIN user_clusters AS u ON u.user_id = b.user_id
)
SELECT count(*) FROM edges AS e JOIN buyers AS s ON s.asin = e.src_asin
"""


def join_votes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql(JOIN_VOTE_SQL).pl()


def dense_user_matrix(counts: pl.DataFrame, class_ids: list[int]) -> tuple[pl.Series, np.ndarray]:
    """Users (sorted) and their class-share matrix from (user_id, class, n) rows sorted by
    user, as the stage built it before: a Python list per row, a dense float64 array."""
    col = {c: i for i, c in enumerate(class_ids)}
    counts = counts.with_columns(pl.col("user_id").rle_id().alias("u"))
    users = counts["user_id"].unique(maintain_order=True)
    x = np.zeros((len(users), len(class_ids)))
    cls = np.array([col[c] for c in counts["class"].to_list()], dtype=np.int64)
    x[counts["u"].to_numpy(), cls] = counts["n"].to_numpy()
    x /= x.sum(axis=1, keepdims=True)
    return users, x


def dense_vectors(x: np.ndarray):
    """(points, inverse, weights, population mean) as the stage computed them from ``x``."""
    points, inverse, weights = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    return points, inverse.reshape(-1), weights.astype(np.float64), x.mean(axis=0)
