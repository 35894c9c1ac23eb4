"""The relations stage: user share vectors, clustering, texts, per-edge relations (see the
package docstring for the rules)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import db, workdir
from pipeline.errors import UserError
from pipeline.io import atomic_path, write_json
from pipeline.modality import NO_TAXONOMY_REASON, has_taxonomy
from pipeline.params import param
from pipeline.relations.clusters import cluster_points, describe, silhouette
from pipeline.relations.vectors import sample_rows, user_vectors, write_user_clusters
from pipeline.relations.vocabulary import Vocabulary, build_vocabulary
from pipeline.relations.votes import edge_votes, nearest_relation
from pipeline.relations.wording import INTRA_TEXT
from pipeline.resources import Resources
from pipeline.sql import load_sql, quote_literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelationsParams:
    relations_k: int = param(10, "number of user clusters (relation types)", flag="--k")
    relation_level: int = param(
        1,
        "taxonomy level users are described by (1 = the category's first-level "
        "subcategories, as RCML A.2)",
        flag="--relation-level",
    )
    seed: int = param(0, "KMeans seed")
    minibatch_threshold: int = param(
        200_000, "MiniBatchKMeans above this many distinct user vectors", cli=False
    )
    sample_silhouette: int = param(10_000, "users sampled for the silhouette", cli=False)

    def __post_init__(self) -> None:
        if self.relations_k < 1:
            raise UserError(f"k must be at least 1, got {self.relations_k}")
        if self.relation_level < 0:
            raise UserError(f"relation_level must be at least 0, got {self.relation_level}")


def relation_outputs(work: Path) -> list[Path]:
    """The stage's outputs: none without a taxonomy (the stage is skipped)."""
    if not has_taxonomy(work):
        return []
    return [Path(work) / n for n in (workdir.EDGE_RELATIONS, workdir.RELATIONS_JSON,
                                     workdir.USER_CLUSTERS)]  # fmt: skip


def relation_inputs(work: Path) -> dict[str, Path]:
    """The stage's inputs by view name (the stage declaration lists the same files)."""
    work = Path(work)
    nodes, edges = workdir.final_graph(work)
    return {
        "bipartite": work / workdir.BIPARTITE,
        "edges": edges,
        "nodes": nodes,
        "reviews": work / workdir.REVIEWS,
        "items": work / workdir.ITEMS,
    }


def build_relations(
    work: Path, p: RelationsParams = RelationsParams(), res: Resources = Resources()
) -> dict:
    """Cluster users, write relation texts and per-edge relations; return the summary.

    See the package docstring for the inputs, outputs and the rules for edge cases.
    """
    work = Path(work)
    if not has_taxonomy(work):  # nothing to describe a relation with (pipeline/modality.py)
        for name in (workdir.EDGE_RELATIONS, workdir.RELATIONS_JSON, workdir.USER_CLUSTERS):
            (work / name).unlink(missing_ok=True)
        log.info("relations: skipped, %s", NO_TAXONOMY_REASON)
        return {"skipped": "no taxonomy", "reason": NO_TAXONOMY_REASON, "k": 0}
    k, seed = p.relations_k, p.seed
    paths = relation_inputs(work)
    missing = [str(path) for path in paths.values() if not path.exists()]
    if missing:
        raise UserError(f"missing input(s): {', '.join(missing)}")
    con = db.open_db(work, res)
    try:
        for view, path in paths.items():
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM read_parquet({quote_literal(str(path))})"
            )
        users_single, users_multi = con.execute(load_sql("relations_user_counts.sql")).fetchall()[0]
        vocab = build_vocabulary(con, p.relation_level)
        vectors = user_vectors(con, vocab.columns)
        if vectors.users == 0:
            raise UserError("no user bought two or more graph nodes")
        if vocab.outside is not None and vocab.columns == 1:
            raise UserError(
                f"no purchase has a subcategory at taxonomy level {p.relation_level}; "
                "set relation_level to a level the category paths reach"
            )
        points, weights = vectors.points, vectors.weights
        k_used = min(k, len(points), vocab.columns)
        if k_used < k:
            log.info(
                "relations: k reduced from %d to %d (%d vocabulary columns, %d distinct "
                "user vectors)",
                k,
                k_used,
                vocab.columns,
                len(points),
            )
        minibatch = len(points) > p.minibatch_threshold
        labels = cluster_points(points, weights, k_used, seed, minibatch)
        labels, cents, sizes, texts, merged = describe(
            points, weights, labels, vectors.population_mean, vocab.names, vocab.outside
        )
        inertia = float((weights * ((points - cents[labels]) ** 2).sum(axis=1)).sum())
        sil_n = min(vectors.users, p.sample_silhouette)
        sil = None
        if sil_n >= 3:
            rows = sample_rows(con, vectors, sil_n, seed)
            sil = silhouette(points[rows], labels[rows])
        write_user_clusters(con, vectors, labels, work / workdir.USER_CLUSTERS)
        edges, instances = edge_votes(con)
        edges = nearest_relation(con, edges, cents)
    finally:
        con.close()
    if int(users_multi or 0) != vectors.users:  # both count users with >= 2 graph purchases
        raise RuntimeError(
            f"relations: {users_multi} multi-purchase users, {vectors.users} vectors"
        )

    with atomic_path(work / workdir.EDGE_RELATIONS) as tmp:
        edges.select(EDGE_COLUMNS).write_parquet(tmp, compression="zstd", statistics=False)
    stats: dict[str, Any] = {
        "k_requested": int(k),
        "k": len(texts),
        "seed": int(seed),
        "algorithm": "minibatch_kmeans" if minibatch else "kmeans",
        "vocabulary_level": vocab.level,
        "classes": vocab.columns - (vocab.outside is not None),
        "purchases_counted": vocab.purchases,
        "purchases_outside": vocab.purchases_outside,
        "users_clustered": vectors.users,
        "users_single_purchase": int(users_single or 0),
        "distinct_user_vectors": len(points),
        "merged_clusters": merged,
        "inertia": round(inertia, 6),
        "silhouette": sil,
        "silhouette_sample": sil_n,
        "cluster_sizes": [int(v) for v in sizes],
        "vote_pair_instances": instances,
        **edge_stats(edges, len(texts)),
    }
    write_json(work / workdir.RELATIONS_JSON, relations_document(vocab, texts, sizes, cents, stats))
    log.info(
        "relations: %d users in %d clusters over %d subcategories (level %d), %d edges "
        "(%d by fallback, %d pair instances), silhouette %s",
        vectors.users,
        len(texts),
        stats["classes"],
        vocab.level,
        stats["edges"],
        stats["edges_fallback"],
        instances,
        sil,
    )
    return stats


EDGE_COLUMNS = ["src_asin", "dst_asin", "relation_id", "relation_users"]
EDGE_COLUMNS += ["relation_ids", "relation_shares"]


def edge_stats(edges: pl.DataFrame, n_rel: int) -> dict[str, Any]:
    """How the edges spread over the relations (by their top relation) and how mixed their
    co-buyers are."""
    n_edges = edges.height
    per_rel = np.bincount(edges["relation_id"].to_numpy(), minlength=n_rel).astype(np.int64)
    with_buyers = edges.filter(pl.col("relation_users") > 0)
    majority_share = (
        round(float((with_buyers["majority_users"] / with_buyers["relation_users"]).mean()), 6)
        if with_buyers.height
        else None
    )
    n_ids = edges["relation_ids"].list.len()
    return {
        "edges": n_edges,
        "edges_per_relation": [int(v) for v in per_rel],
        "edge_shares": [round(float(v) / n_edges, 6) if n_edges else 0.0 for v in per_rel],
        "edges_fallback": n_edges - with_buyers.height,
        "majority_share_mean": majority_share,
        "edges_multi_relation": int((n_ids > 1).sum()),
        "relations_per_edge_mean": round(float(n_ids.mean()), 6) if n_edges else None,
    }


def relations_document(
    vocab: Vocabulary, texts: list[str], sizes: np.ndarray, cents: np.ndarray, stats: dict
) -> dict:
    """relations.json: the texts, each cluster's size, edges and centroid, the vocabulary."""
    real = [j for j in range(vocab.columns) if j != vocab.outside]
    relations = []
    for c, text in enumerate(texts):
        rel = {
            "id": c,
            "text": text,
            "users": int(sizes[c]),
            "edges": stats["edges_per_relation"][c],
            "shares": {vocab.names[j]: round(float(cents[c, j]), 6) for j in real},
        }
        if vocab.outside is not None:
            rel["outside_share"] = round(float(cents[c, vocab.outside]), 6)
        relations.append(rel)
    return {
        "intra_text": INTRA_TEXT,
        "vocabulary": {
            "level": vocab.level,
            "names": [vocab.names[j] for j in real],
            "outside": vocab.outside is not None,
        },
        "relations": relations,
        "stats": stats,
    }
