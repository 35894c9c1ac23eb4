"""SLIP Fig. 5: cross-modal cosine similarity of node pairs by their hop distance.

For sampled anchor nodes of one split, the nodes at exactly 1, 2 and 3 hops in the graph
induced by that split are found breadth-first; each pair (anchor i, node j) scores
cos(image_i, text_j). Hop 0 is the node's own pair; "random" pairs each anchor with random
split nodes (any distance). The paper plots these distributions before and after training.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

HOPS = (1, 2, 3)


def hop_pairs(
    adj: sp.csr_matrix,
    nodes: np.ndarray,
    max_anchors: int = 1000,
    per_anchor: int = 20,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """{"0", "1", "2", "3", "random"} -> [P, 2] pairs of positions into ``nodes``.

    Distances are shortest paths in the subgraph induced by ``nodes``; at most
    ``per_anchor`` pairs per anchor and distance, drawn at random (seeded).
    """
    rng = np.random.default_rng(seed)
    nodes = np.asarray(nodes, dtype=np.int64)
    sub = adj[nodes][:, nodes].tocsr()
    n = len(nodes)
    anchors = np.sort(rng.choice(n, min(max_anchors, n), replace=False)) if n else nodes[:0]
    out: dict[str, list[np.ndarray]] = {str(h): [] for h in (0, *HOPS)} | {"random": []}
    seen = np.full(n, -1, dtype=np.int64)  # anchor that last visited each node
    for a in anchors:
        out["0"].append(np.array([[a, a]]))
        seen[a] = a
        frontier = np.array([a])
        for h in HOPS:
            nbrs = np.unique(sub[frontier].indices)
            frontier = nbrs[seen[nbrs] != a]
            seen[frontier] = a
            if len(frontier):
                pick = rng.choice(frontier, min(per_anchor, len(frontier)), replace=False)
                out[str(h)].append(np.stack([np.full(len(pick), a), pick], axis=1))
        others = rng.choice(n - 1, min(per_anchor, n - 1), replace=False) if n > 1 else []
        others = np.asarray(others, dtype=np.int64)
        others += others >= a  # skip the anchor itself
        out["random"].append(np.stack([np.full(len(others), a), others], axis=1))
    return {k: np.concatenate(v) if v else np.zeros((0, 2), dtype=np.int64) for k, v in out.items()}


def hop_similarity(
    image: torch.Tensor, text: torch.Tensor, pairs: dict[str, np.ndarray]
) -> tuple[dict, dict[str, np.ndarray]]:
    """(summary {kind: {"mean", "std", "pairs"}}, the cosine of every pair by kind)."""
    img = F.normalize(image.float(), dim=-1)
    txt = F.normalize(text.float(), dim=-1)
    summary, values = {}, {}
    for kind, p in pairs.items():
        if len(p) == 0:
            summary[kind] = {"mean": None, "std": None, "pairs": 0}
            continue
        cos = (img[p[:, 0]] * txt[p[:, 1]]).sum(-1).numpy()
        values[kind] = cos
        summary[kind] = {"mean": float(cos.mean()), "std": float(cos.std()), "pairs": len(p)}
    return summary, values
