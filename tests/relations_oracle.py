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


# Per-user purchase counts over classes, as the stage read them before (graph nodes only).
USER_CLASSES_SQL = """
WITH purchases AS (
    SELECT DISTINCT b.user_id, b.asin, c.class
    FROM bipartite AS b
    JOIN nodes AS n ON n.asin = b.asin
    JOIN classes AS c ON c.asin = b.asin
),
eligible AS (
    SELECT user_id FROM purchases GROUP BY user_id HAVING count(*) >= 2
)
SELECT p.user_id, p.class, count(*) AS n
FROM purchases AS p
JOIN eligible AS e ON e.user_id = p.user_id
GROUP BY p.user_id, p.class
ORDER BY p.user_id, p.class
"""


def previous_relations(work, k: int = 10, seed: int = 0, sample: int = 10_000) -> dict:
    """The stage's heavy steps as they ran before (the bench's baseline): DuckDB without a
    memory limit, the dense matrix, sklearn's default silhouette blocks, the join vote.
    Writes nothing; returns the votes."""
    from pathlib import Path

    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    from pipeline import workdir
    from pipeline.relations.clusters import cluster_points, describe

    work = Path(work)
    nodes, edges = workdir.final_graph(work)
    con = duckdb.connect()
    for view, path in {
        "bipartite": work / workdir.BIPARTITE,
        "edges": edges,
        "nodes": nodes,
        "classes": work / workdir.CLASSES,
    }.items():
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{path}')")
    rows = con.execute(
        "SELECT class, min(class_name) FROM classes GROUP BY class ORDER BY class"
    ).fetchall()
    class_ids, names = [r[0] for r in rows], [r[1] for r in rows]
    users, x = dense_user_matrix(con.sql(USER_CLASSES_SQL).pl(), class_ids)
    points, inverse, weights, mean = dense_vectors(x)
    del x
    k_used = min(k, len(points), len(names))
    labels = cluster_points(points, weights, k_used, seed, len(points) > 200_000)
    labels = describe(points, weights, labels, mean, names)[0]
    size = min(len(inverse), sample)
    idx = np.sort(np.random.default_rng(seed).choice(len(inverse), size=size, replace=False))
    if len(np.unique(labels[inverse[idx]])) > 1:
        with threadpool_limits(limits=1):
            silhouette_score(points[inverse[idx]], labels[inverse[idx]])
    clusters = pl.DataFrame({"user_id": users, "cluster": labels[inverse]})
    con.register("user_clusters", clusters.to_arrow())
    return join_votes(con)
