"""Users' share vectors, built in DuckDB (sql/relations_user_vectors.sql).

Every clustered user gets the share of their counted purchases in each column of the
vocabulary; DuckDB deduplicates the vectors, so numpy holds one row per distinct vector (a
few thousand where users number millions), and the user -> vector map stays in DuckDB
(table ``user_vid``) until the clusters are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from pipeline.io import atomic_path
from pipeline.sql import execute_script, quote_literal


@dataclass(frozen=True)
class UserVectors:
    points: np.ndarray  # float64 [D, C]: the distinct share vectors, rows sorted (np.unique)
    weights: np.ndarray  # float64 [D]: users holding each vector (the KMeans sample weights)
    vid_point: np.ndarray  # int64 [D]: row of ``points`` of each DuckDB vector id
    users: int
    population_mean: np.ndarray  # float64 [C]: the mean share vector over all users


def user_vectors(con: duckdb.DuckDBPyConnection, columns: int) -> UserVectors:
    """The distinct share vectors of view ``counted`` (user_id, col) with their weights."""
    execute_script(con, "relations_user_vectors")
    cells = con.sql(
        "SELECT vid, v.col AS col, v.share AS share FROM (SELECT vid, unnest(vec) AS v "
        "FROM vectors)"
    ).fetchnumpy()
    held = con.sql("SELECT vid, users FROM vectors").fetchnumpy()
    dense = np.zeros((len(held["vid"]), columns))
    dense[cells["vid"].astype(np.int64), cells["col"].astype(np.int64)] = cells["share"]
    users_of = np.zeros(len(held["vid"]))
    users_of[held["vid"].astype(np.int64)] = held["users"]
    # The rows are distinct already; np.unique puts them in the order the clustering has
    # always seen (sorted rows), so the seeded KMeans finds the same clusters.
    points, vid_point = np.unique(dense, axis=0, return_inverse=True)
    vid_point = vid_point.reshape(-1).astype(np.int64)
    weights = np.zeros(len(points))
    weights[vid_point] = users_of
    users = int(users_of.sum())
    mean = (points * weights[:, None]).sum(axis=0) / max(users, 1)
    return UserVectors(points, weights, vid_point, users, mean)


def sample_rows(con: duckdb.DuckDBPyConnection, vectors: UserVectors, size: int, seed: int):
    """Rows of ``vectors.points`` of a seeded sample of ``size`` users (users in id order)."""
    pos = np.sort(np.random.default_rng(seed).choice(vectors.users, size=size, replace=False))
    con.register("sample_pos", pl.DataFrame({"pos": pos.astype(np.int64)}).to_arrow())
    vid = con.sql(
        "SELECT s.vid FROM (SELECT vid, row_number() OVER (ORDER BY user_id) - 1 AS pos "
        "FROM user_vid) AS s JOIN sample_pos AS p ON p.pos = s.pos ORDER BY s.pos"
    ).fetchnumpy()["vid"]
    con.unregister("sample_pos")
    return vectors.vid_point[vid.astype(np.int64)]


def write_user_clusters(
    con: duckdb.DuckDBPyConnection, vectors: UserVectors, labels: np.ndarray, path: Path
) -> None:
    """Table ``user_clusters`` (user_id, cluster) from each vector's label; written sorted."""
    vid_cluster = pl.DataFrame(
        {
            "vid": np.arange(len(vectors.vid_point), dtype=np.int64),
            "cluster": labels[vectors.vid_point].astype(np.int64),
        }
    )
    con.register("vid_cluster", vid_cluster.to_arrow())
    con.execute(
        "CREATE OR REPLACE TEMP TABLE user_clusters AS SELECT u.user_id, c.cluster "
        "FROM user_vid AS u JOIN vid_cluster AS c ON c.vid = u.vid"
    )
    con.unregister("vid_cluster")
    with atomic_path(path) as tmp:
        con.execute(
            "COPY (SELECT user_id, cluster FROM user_clusters ORDER BY user_id) "
            f"TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
        )
