"""``edge_splits.parquet``: the leak-free link-prediction splits with fixed negatives
(``pipeline.tasks.edge_splits`` states the rules; the card repeats them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.publish.writers.parquet import write_parquet
from pipeline.tasks.edge_splits import EdgeSplitParams, edge_split_counts, edge_splits

FILE = "edge_splits.parquet"
# 22 M rows at Electronics size: large row groups keep the file small (dst is the only
# high-entropy column) and readers fast; 1 M rows is about 3 MB compressed per group.
ROW_GROUP_ROWS = 1_000_000


def write_edge_splits(
    dest: Path, src: np.ndarray, dst: np.ndarray, n_nodes: int, seed: int, p: EdgeSplitParams
) -> dict[str, int | float]:
    """The splits of the undirected edges (src[i], dst[i]) over ``n_nodes`` nodes; returns
    their counts (positives per split, negatives per positive, hard negatives)."""
    table = edge_splits(
        src,
        dst,
        n_nodes,
        seed=seed,
        ratios=p.edge_ratios,
        negatives=p.negatives,
        hard_fraction=p.hard_fraction,
    )
    write_parquet(table, dest / FILE, row_group_rows=ROW_GROUP_ROWS)
    return edge_split_counts(table)
