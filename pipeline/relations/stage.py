"""The relations stage: user share vectors, clustering, texts, per-edge relations (see the
package docstring for the rules)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from pipeline import db, workdir
from pipeline.errors import UserError
from pipeline.io import atomic_path, write_json
from pipeline.params import param
from pipeline.relations.clusters import cluster_points, describe, silhouette
from pipeline.relations.vectors import sample_rows, user_vectors, write_user_clusters
from pipeline.relations.votes import edge_votes, nearest_relation
from pipeline.relations.wording import INTRA_TEXT
from pipeline.resources import Resources
from pipeline.sql import execute_script, load_sql, quote_literal

log = logging.getLogger(__name__)

# DuckDB memory_limit of the stage unless --memory-limit / ACMMG_DUCKDB_MEMORY say otherwise
# (it spills to WORK/.duckdb_tmp past it).
DEFAULT_MEMORY_LIMIT = "2GB"


@dataclass(frozen=True)
class RelationsParams:
    relations_k: int = param(10, "number of user clusters (relation types)", flag="--k")
    seed: int = param(0, "KMeans seed")
    minibatch_threshold: int = param(
        200_000, "MiniBatchKMeans above this many distinct user vectors", cli=False
    )
    sample_silhouette: int = param(10_000, "users sampled for the silhouette", cli=False)

    def __post_init__(self) -> None:
        if self.relations_k < 1:
            raise UserError(f"k must be at least 1, got {self.relations_k}")


def _input_paths(work: Path) -> dict[str, Path]:
    nodes, edges = workdir.final_graph(work)
    paths = {
        "bipartite": work / workdir.BIPARTITE,
        "edges": edges,
        "nodes": nodes,
        "classes": work / workdir.CLASSES,
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise UserError(f"missing input(s): {', '.join(missing)}")
    return paths


def _load_classes(con: duckdb.DuckDBPyConnection) -> tuple[list[int], list[str]]:
    dup = con.execute(
        "SELECT count(*) FROM (SELECT asin FROM classes GROUP BY asin HAVING count(*) > 1)"
    ).fetchall()[0][0]
    if dup:
        raise UserError(f"classes.parquet gives {dup} asin(s) more than one class")
    rows = con.execute(
        "SELECT class, min(class_name), count(DISTINCT class_name) FROM classes "
        "GROUP BY class ORDER BY class"
    ).fetchall()
    bad = [r[0] for r in rows if r[2] != 1]
    if bad:
        raise UserError(f"class(es) {bad} have no or several class names")
    names = [r[1] for r in rows]
    if len(set(names)) != len(names):
        raise UserError("two classes share a class name")
    missing = con.execute(
        "SELECT count(*) FROM nodes AS n ANTI JOIN classes AS c ON c.asin = n.asin"
    ).fetchall()[0][0]
    if missing:
        raise UserError(
            f"{missing} graph node(s) have no class in classes.parquet; "
            "run the classes stage on the final graph first"
        )
    return [int(r[0]) for r in rows], names


def build_relations(
    work: Path, p: RelationsParams = RelationsParams(), res: Resources = Resources()
) -> dict:
    """Cluster users, write relation texts and per-edge relations; return the summary.

    See the package docstring for the inputs, outputs and the rules for edge cases.
    """
    work = Path(work)
    k, seed = p.relations_k, p.seed
    paths = _input_paths(work)
    con = db.open_db(work, res, DEFAULT_MEMORY_LIMIT)
    try:
        for view, path in paths.items():
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM read_parquet({quote_literal(str(path))})"
            )
        class_ids, class_names = _load_classes(con)
        users_single, users_multi = con.execute(load_sql("relations_user_counts.sql")).fetchall()[0]
        execute_script(con, "relations_user_classes")
        vectors = user_vectors(con, len(class_ids))
        if vectors.users == 0:
            raise UserError("no user bought two or more graph nodes")
        points, weights = vectors.points, vectors.weights
        k_used = min(k, len(points), len(class_names))
        if k_used < k:
            log.info(
                "relations: k reduced from %d to %d (%d classes, %d distinct user vectors)",
                k,
                k_used,
                len(class_names),
                len(points),
            )
        minibatch = len(points) > p.minibatch_threshold
        labels = cluster_points(points, weights, k_used, seed, minibatch)
        labels, cents, sizes, texts, merged = describe(
            points, weights, labels, vectors.population_mean, class_names
        )
        n_rel = len(texts)
        inertia = float((weights * ((points - cents[labels]) ** 2).sum(axis=1)).sum())
        sil_n = min(vectors.users, p.sample_silhouette)
        sil = None
        if sil_n >= 3:
            rows = sample_rows(con, vectors, sil_n, seed)
            sil = silhouette(points[rows], labels[rows])
        write_user_clusters(con, vectors, labels, work / workdir.USER_CLUSTERS)
        edges, instances = edge_votes(con)
        edges = nearest_relation(con, edges, cents, class_ids)
    finally:
        con.close()

    n_edges = edges.height
    per_rel = np.bincount(edges["relation_id"].to_numpy(), minlength=n_rel).astype(np.int64)
    with_buyers = edges.filter(pl.col("relation_users") > 0)
    majority_share = (
        round(float((with_buyers["majority_users"] / with_buyers["relation_users"]).mean()), 6)
        if with_buyers.height
        else None
    )
    edge_out = edges.select(
        "src_asin",
        "dst_asin",
        pl.col("relation_id").cast(pl.Int64),
        pl.col("relation_users").cast(pl.Int64),
    )
    with atomic_path(work / workdir.EDGE_RELATIONS) as tmp:
        edge_out.write_parquet(tmp, compression="zstd", statistics=False)

    stats: dict[str, Any] = {
        "k_requested": int(k),
        "k": n_rel,
        "seed": int(seed),
        "algorithm": "minibatch_kmeans" if minibatch else "kmeans",
        "users_clustered": vectors.users,
        "users_single_purchase": int(users_single or 0),
        "distinct_user_vectors": len(points),
        "classes": len(class_names),
        "merged_clusters": merged,
        "inertia": round(inertia, 6),
        "silhouette": sil,
        "silhouette_sample": sil_n,
        "cluster_sizes": [int(v) for v in sizes],
        "edges": n_edges,
        "edges_per_relation": [int(v) for v in per_rel],
        "edge_shares": [round(float(v) / n_edges, 6) if n_edges else 0.0 for v in per_rel],
        "edges_fallback": n_edges - with_buyers.height,
        "majority_share_mean": majority_share,
    }
    if int(users_multi or 0) != vectors.users:  # both count users with >= 2 graph purchases
        raise RuntimeError(
            f"relations: {users_multi} multi-purchase users, {vectors.users} vectors"
        )
    relations = [
        {
            "id": c,
            "text": texts[c],
            "users": int(sizes[c]),
            "edges": int(per_rel[c]),
            "shares": {
                class_names[j]: round(float(cents[c, j]), 6) for j in range(len(class_names))
            },
        }
        for c in range(n_rel)
    ]
    write_json(
        work / workdir.RELATIONS_JSON,
        {"intra_text": INTRA_TEXT, "relations": relations, "stats": stats},
    )
    log.info(
        "relations: %d users in %d clusters, %d edges (%d by fallback, %d pair instances), "
        "silhouette %s",
        vectors.users,
        n_rel,
        n_edges,
        stats["edges_fallback"],
        instances,
        sil,
    )
    return stats
