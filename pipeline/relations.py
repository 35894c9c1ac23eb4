"""RCML relation texts: cluster users by what they buy, describe each cluster in words, and
give every co-purchase edge the relation of the users who bought both of its items.

Follows section 3.2 and appendix A.2 of the RCML paper: each user's purchases become a
distribution over the category's classes (the taxonomy level chosen by the classes stage),
users are clustered on these distributions (KMeans, k=10 by default), and each cluster is
summarised as a sentence such as "Co-purchased by people who primarily buy Car Seats &
Accessories, followed by Nursery and Feeding, ...". Intra-sample pairs (image and text of the
same product) share the fixed text ``INTRA_TEXT`` of appendix A.2.

Inputs (see pipeline.workdir): bipartite.parquet, final/edges.parquet and final/nodes.parquet
(falling back to edges.parquet / nodes.parquet when the filter stage has not run) and
classes.parquet. Outputs under relations/: edge_relations.parquet (src_asin, dst_asin,
relation_id, relation_users; one row per final edge, sorted), relations.json and
user_clusters.parquet (user_id, cluster); a summary goes into stats.json under "relations".

Rules for the awkward cases:
- Users are clustered only when they bought at least two graph nodes. A user with one graph
  purchase cannot have co-purchased any edge; they are counted (``users_single_purchase``)
  and left out. Purchases of items that are not final nodes are ignored.
- Every final node must have a class; otherwise a UserError names how many lack one.
- Users with identical share vectors are clustered as one weighted point (exactly the same
  KMeans objective, much smaller problem). The number of clusters actually used is
  ``min(k, distinct user vectors, number of classes)``; a reduction is logged. More clusters
  than classes cannot get texts that tell them apart in class terms.
- MiniBatchKMeans replaces KMeans when the distinct vectors number more than
  ``minibatch_threshold``. Clustering runs single-threaded: multi-threaded reductions sum in
  a varying order, and same inputs must give byte-identical artifacts.
- Relation ids are canonical: 0 is the largest cluster (ties by centroid). Centroids are the
  exact weighted means of their members, recomputed after clustering.
- Texts: classes fall into tiers (dominant / secondary / moderate / low / minimal) by their
  share relative to the cluster's top share, moved one tier up or down when the cluster buys
  them at least twice / at most half as much as the average user (``relation_tiers``). The
  dominant class is always named first; at most 12 classes are named, the rest counted.
- Texts of different relations always differ: clusters whose plain texts coincide are
  re-described with percentages; clusters still identical at percentage precision are
  merged (counted in ``merged_clusters``) since no words can tell them apart.
- relation_id of an edge = the cluster holding most of its clustered co-buyers (users who
  bought both endpoints), lowest id on ties; relation_users = number of those co-buyers.
  An edge with no clustered co-buyer (possible when an upstream filter, such as a cap on
  items per user, removed its buyers from the bipartite table) gets the relation whose
  centroid is nearest to the edge's own class-share vector (half of each endpoint's class;
  lowest id on ties) and relation_users = 0; such edges are counted in ``edges_fallback``.
- Silhouette is computed on a seeded sample of at most ``sample_silhouette`` users (null when
  the sample holds fewer than two clusters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from pipeline import db, workdir
from pipeline.errors import UserError
from pipeline.io import atomic_path, write_json
from pipeline.params import param
from pipeline.resources import Resources
from pipeline.sql import load_sql, quote_literal

log = logging.getLogger(__name__)

INTRA_TEXT = "These two items represent the same product. Align their features accordingly."


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


TIERS = ("dominant", "secondary", "moderate", "low", "minimal")
# Base tier from a class's share relative to the centroid's top share.
_R_DOMINANT = 0.75
_R_SECONDARY = 0.35
_R_MODERATE = 0.12
_R_LOW = 0.03
# Population adjustment: a class bought at least this many times more than by the average
# user moves one tier up (never into dominant, never out of minimal); one bought at most
# this fraction of the average moves one tier down.
_LIFT_UP = 2.0
_LIFT_DOWN = 0.5


# --------------------------------------------------------------------------- texts


def relation_tiers(centroid: np.ndarray, population_mean: np.ndarray) -> list[int]:
    """Tier index (0 = dominant ... 4 = minimal, see ``TIERS``) of every class.

    The top class (lowest index on ties) is always dominant; others are placed by their share
    relative to the top share, then moved one tier by their lift over the population mean.
    """
    s = np.asarray(centroid, dtype=np.float64)
    m = np.asarray(population_mean, dtype=np.float64)
    if s.ndim != 1 or s.shape != m.shape or s.size == 0:
        raise ValueError("centroid and population_mean must be 1-d arrays of the same length")
    if not np.all(np.isfinite(s)) or s.max() <= 0:
        raise ValueError("centroid must have a positive share somewhere")
    top = int(np.argmax(s))
    r = s / s[top]
    tiers = []
    for j in range(s.size):
        if j == top or r[j] >= _R_DOMINANT:
            tiers.append(0)
            continue
        if s[j] <= 0:
            tiers.append(4)
            continue
        if r[j] >= _R_SECONDARY:
            t = 1
        elif r[j] >= _R_MODERATE:
            t = 2
        elif r[j] >= _R_LOW:
            t = 3
        else:
            t = 4
        lift = s[j] / m[j] if m[j] > 0 else np.inf
        if lift >= _LIFT_UP and 2 <= t <= 3:
            t -= 1
        elif lift <= _LIFT_DOWN and t <= 3:
            t += 1
        tiers.append(t)
    return tiers


def _join(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def _percent(share: float) -> str:
    pct = round(100 * share)
    return "<1%" if pct < 1 else f"{pct}%"


def relation_text(
    centroid: np.ndarray,
    population_mean: np.ndarray,
    class_names: list[str],
    *,
    detail: bool = False,
    max_names: int = 12,
) -> str:
    """Describe one cluster centroid (class shares) in the style of RCML appendix A.2.

    Classes are ranked by share and grouped into tiers (``relation_tiers``); the dominant
    class comes first. ``detail`` adds percentages to the dominant, secondary and moderate
    classes (used to tell apart clusters whose plain texts coincide). At most ``max_names``
    classes are named (dominant ones always; then tier by tier) and the rest are counted
    ("and 4 other categories"): with the paper's ~10 classes every class is named, and
    categories with many classes still fit a CLIP text encoder's 77 tokens.
    """
    s = np.asarray(centroid, dtype=np.float64)
    if len(class_names) != s.size:
        raise ValueError(f"{len(class_names)} class names for {s.size} shares")
    tiers = relation_tiers(s, population_mean)
    m = np.asarray(population_mean, dtype=np.float64)
    # Within a tier: larger share first, then class order (stable, deterministic).
    order = sorted(range(s.size), key=lambda j: (-s[j], j))
    groups: list[list[int]] = [[j for j in order if tiers[j] == t] for t in range(len(TIERS))]

    budget = max(max_names - len(groups[0]), 0)
    shown_in: list[list[int]] = [groups[0]]
    for idx in groups[1:]:
        shown_in.append(idx[:budget])
        budget -= len(shown_in[-1])

    def names(t: int) -> list[str]:
        idx, shown = groups[t], shown_in[t]
        out = [
            f"{class_names[j]} ({_percent(s[j])})" if detail and t <= 2 else class_names[j]
            for j in shown
        ]
        rest = len(idx) - len(shown)
        if rest:
            out.append(f"{rest} other {'category' if rest == 1 else 'categories'}")
        return out

    top = groups[0][0]
    lift_top = s[top] / m[top] if m[top] > 0 else np.inf
    if len(groups[0]) > 1:
        verb = "primarily buy"
    elif s[top] >= 0.6:
        verb = "overwhelmingly buy"
    elif lift_top >= 3:
        verb = "show a striking preference for"
    elif s[top] >= 0.4:
        verb = "heavily favor"
    else:
        verb = "primarily buy"
    parts = [f"Co-purchased by people who {verb} {_join(names(0))}"]
    if groups[1]:
        parts.append(f"followed by {_join(names(1))}")
    if groups[2]:
        parts.append(f"with moderate interest in {_join(names(2))}")
    tail = []
    if groups[3]:
        tail.append(f"lower engagement in {_join(names(3))}")
    if groups[4]:
        tail.append(f"minimal interest in {_join(names(4))}")
    if tail:
        parts.append("while showing " + ", and ".join(tail))
    return ", ".join(parts) + "."


# --------------------------------------------------------------------------- clustering


def _cluster(
    points: np.ndarray, weights: np.ndarray, k: int, seed: int, minibatch: bool
) -> np.ndarray:
    """Labels of the weighted points; single-threaded so results are bit-for-bit stable."""
    if k == 1:
        return np.zeros(len(points), dtype=np.int64)
    from sklearn.cluster import KMeans, MiniBatchKMeans

    with threadpool_limits(limits=1):
        if minibatch:
            model = MiniBatchKMeans(
                n_clusters=k, random_state=seed, n_init=3, batch_size=4096, max_iter=200
            )
        else:
            model = KMeans(n_clusters=k, random_state=seed, n_init=10)
        model.fit(points, sample_weight=weights.astype(np.float64))
    return model.labels_.astype(np.int64)


def _centroids(points: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int):
    sizes = np.bincount(labels, weights=weights, minlength=k)
    sums = np.zeros((k, points.shape[1]))
    np.add.at(sums, labels, points * weights[:, None])
    return sums / np.maximum(sizes, 1)[:, None], sizes.astype(np.int64)


def _canonical(points: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Renumber non-empty clusters: largest first, ties by centroid (descending)."""
    present = np.unique(labels)
    remap = np.full(labels.max() + 1, -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    labels = remap[labels]
    cents, sizes = _centroids(points, weights, labels, len(present))
    key = sorted(
        range(len(present)),
        key=lambda c: (-int(sizes[c]), tuple(-np.round(cents[c], 12))),
    )
    order = np.empty(len(present), dtype=np.int64)
    order[np.array(key)] = np.arange(len(present))
    return order[labels]


def _describe(
    points: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    population_mean: np.ndarray,
    class_names: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], int]:
    """Canonical labels, centroids, sizes and one distinct text per cluster.

    Returns (labels, centroids, sizes, texts, merged) where ``merged`` counts clusters folded
    into another because even their detailed texts were identical.
    """
    merged = 0
    while True:
        labels = _canonical(points, weights, labels)
        k = int(labels.max()) + 1
        cents, sizes = _centroids(points, weights, labels, k)
        texts = [relation_text(cents[c], population_mean, class_names) for c in range(k)]
        dup = {t for t in texts if texts.count(t) > 1}
        for c in range(k):
            if texts[c] in dup:
                texts[c] = relation_text(cents[c], population_mean, class_names, detail=True)
        first: dict[str, int] = {}
        remap = np.arange(k)
        for c in range(k):
            if texts[c] in first:
                remap[c] = first[texts[c]]
            else:
                first[texts[c]] = c
        if (remap == np.arange(k)).all():
            return labels, cents, sizes, texts, merged
        merged += int((remap != np.arange(k)).sum())
        log.info("merging %d clusters whose descriptions coincide", merged)
        labels = remap[labels]


def _silhouette(
    points: np.ndarray, inverse: np.ndarray, labels: np.ndarray, sample: int, seed: int
) -> tuple[float | None, int]:
    n = len(inverse)
    size = min(n, sample)
    if size < 3:
        return None, size
    idx = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    x = points[inverse[idx]]
    y = labels[inverse[idx]]
    if len(np.unique(y)) < 2 or len(np.unique(y)) > size - 1:
        return None, size
    from sklearn.metrics import silhouette_score

    with threadpool_limits(limits=1):
        return round(float(silhouette_score(x, y)), 6), size


# --------------------------------------------------------------------------- stage


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


def _user_matrix(counts: pl.DataFrame, class_ids: list[int]) -> tuple[pl.Series, np.ndarray]:
    """Users (sorted as the SQL returned them) and their class-share matrix."""
    col = {c: i for i, c in enumerate(class_ids)}
    counts = counts.with_columns(pl.col("user_id").rle_id().alias("u"))
    users = counts["user_id"].unique(maintain_order=True)
    x = np.zeros((len(users), len(class_ids)))
    cls = np.array([col[c] for c in counts["class"].to_list()], dtype=np.int64)
    x[counts["u"].to_numpy(), cls] = counts["n"].to_numpy()
    # Exact division: users with proportional counts get bit-identical share vectors.
    x /= x.sum(axis=1, keepdims=True)
    return users, x


def build_relations(
    work: Path, p: RelationsParams = RelationsParams(), res: Resources = Resources()
) -> dict:
    """Cluster users, write relation texts and per-edge relations; return the summary.

    See the module docstring for the inputs, outputs and the rules for edge cases.
    """
    work = Path(work)
    k, seed = p.relations_k, p.seed
    minibatch_threshold, sample_silhouette = p.minibatch_threshold, p.sample_silhouette
    paths = _input_paths(work)
    con = db.open_db(work, res)
    try:
        for view, path in paths.items():
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM read_parquet({quote_literal(str(path))})"
            )
        class_ids, class_names = _load_classes(con)
        users_single, users_multi = con.execute(load_sql("relations_user_counts.sql")).fetchall()[0]
        counts = con.sql(load_sql("relations_user_classes.sql")).pl()
        if counts.height == 0:
            raise UserError("no user bought two or more graph nodes")
        users, x = _user_matrix(counts, class_ids)
        del counts

        points, inverse, weights = np.unique(x, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        weights = weights.astype(np.float64)
        population_mean = x.mean(axis=0)
        del x
        k_used = min(k, len(points), len(class_names))
        if k_used < k:
            log.info(
                "relations: k reduced from %d to %d (%d classes, %d distinct user vectors)",
                k,
                k_used,
                len(class_names),
                len(points),
            )
        minibatch = len(points) > minibatch_threshold
        labels = _cluster(points, weights, k_used, seed, minibatch)
        labels, cents, sizes, texts, merged = _describe(
            points, weights, labels, population_mean, class_names
        )
        n_rel = len(texts)
        user_labels = labels[inverse]
        inertia = float((weights * ((points - cents[labels]) ** 2).sum(axis=1)).sum())
        silhouette, sil_n = _silhouette(points, inverse, labels, sample_silhouette, seed)

        clusters = pl.DataFrame({"user_id": users, "cluster": user_labels}).sort("user_id")
        with atomic_path(work / workdir.USER_CLUSTERS) as tmp:
            clusters.write_parquet(tmp, compression="zstd", statistics=False)
        con.register("user_clusters", clusters.to_arrow())
        edges = con.sql(load_sql("edge_relations.sql")).pl()
        edges = _fallback(con, edges, cents, class_ids)
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
        "users_clustered": len(users),
        "users_single_purchase": int(users_single or 0),
        "distinct_user_vectors": len(points),
        "classes": len(class_names),
        "merged_clusters": merged,
        "inertia": round(inertia, 6),
        "silhouette": silhouette,
        "silhouette_sample": sil_n,
        "cluster_sizes": [int(v) for v in sizes],
        "edges": n_edges,
        "edges_per_relation": [int(v) for v in per_rel],
        "edge_shares": [round(float(v) / n_edges, 6) if n_edges else 0.0 for v in per_rel],
        "edges_fallback": n_edges - with_buyers.height,
        "majority_share_mean": majority_share,
    }
    if int(users_multi or 0) != len(users):  # both count users with >= 2 graph purchases
        raise RuntimeError(f"relations: {users_multi} multi-purchase users, {len(users)} vectors")
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
        "relations: %d users in %d clusters, %d edges (%d by fallback), silhouette %s",
        len(users),
        n_rel,
        n_edges,
        stats["edges_fallback"],
        silhouette,
    )
    return stats


def _fallback(
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
    if cls.height != orphans.height:
        raise UserError("an edge endpoint has no class in classes.parquet")
    col = {c: i for i, c in enumerate(class_ids)}
    vec = np.zeros((cls.height, len(class_ids)))
    rows = np.arange(cls.height)
    np.add.at(vec, (rows, [col[c] for c in cls["cs"].to_list()]), 0.5)
    np.add.at(vec, (rows, [col[c] for c in cls["cd"].to_list()]), 0.5)
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
