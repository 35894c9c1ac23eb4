"""User clustering for the relations: weighted KMeans on distinct share vectors, canonical
cluster ids, one distinct text per cluster, and the silhouette on a sample."""

from __future__ import annotations

import logging

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.relations.wording import relation_text

log = logging.getLogger(__name__)

# sklearn's working memory for the silhouette's distance blocks (its default: 1 GB).
SILHOUETTE_MEMORY_MB = 64


def cluster_points(
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


def centroids(points: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int):
    sizes = np.bincount(labels, weights=weights, minlength=k)
    sums = np.zeros((k, points.shape[1]))
    np.add.at(sums, labels, points * weights[:, None])
    return sums / np.maximum(sizes, 1)[:, None], sizes.astype(np.int64)


def canonical_labels(points: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Renumber non-empty clusters: largest first, ties by centroid (descending)."""
    present = np.unique(labels)
    remap = np.full(labels.max() + 1, -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    labels = remap[labels]
    cents, sizes = centroids(points, weights, labels, len(present))
    key = sorted(
        range(len(present)),
        key=lambda c: (-int(sizes[c]), tuple(-np.round(cents[c], 12))),
    )
    order = np.empty(len(present), dtype=np.int64)
    order[np.array(key)] = np.arange(len(present))
    return order[labels]


def describe(
    points: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    population_mean: np.ndarray,
    class_names: list[str],
    outside: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], int]:
    """Canonical labels, centroids, sizes and one distinct text per cluster (``outside``: the
    column of purchases without a subcategory, see ``relation_text``).

    Returns (labels, centroids, sizes, texts, merged) where ``merged`` counts clusters folded
    into another because even their detailed texts were identical.
    """
    merged = 0
    while True:
        labels = canonical_labels(points, weights, labels)
        k = int(labels.max()) + 1
        cents, sizes = centroids(points, weights, labels, k)
        texts = [
            relation_text(cents[c], population_mean, class_names, outside=outside) for c in range(k)
        ]
        dup = {t for t in texts if texts.count(t) > 1}
        for c in range(k):
            if texts[c] in dup:
                texts[c] = relation_text(
                    cents[c], population_mean, class_names, detail=True, outside=outside
                )
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


def silhouette(x: np.ndarray, y: np.ndarray) -> float | None:
    """Silhouette of the sampled points ``x`` with labels ``y`` (None with fewer than two
    clusters, or one point per cluster). sklearn computes it by row blocks; a small working
    memory bounds them (each row's sum stays within one block, so the value is the same)."""
    n = len(y)
    if len(np.unique(y)) < 2 or len(np.unique(y)) > n - 1:
        return None
    import sklearn
    from sklearn.metrics import silhouette_score

    with threadpool_limits(limits=1), sklearn.config_context(working_memory=SILHOUETTE_MEMORY_MB):
        return round(float(silhouette_score(x, y)), 6)
