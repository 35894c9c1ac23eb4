"""Retrieval metrics: SLIP Table 2 (MRR, Recall@k, mean / median rank) and RCML Table 1
(relation-guided Hit@5 over 1 positive + 20 negatives) and relation-type top-3 accuracy.

Ranks are 1-based and ties count against the query: a candidate scoring exactly as high as
the correct one is ranked ahead of it. A collapsed model (all scores equal) therefore gets the
worst rank, never a lucky first place.
"""

from __future__ import annotations

import numpy as np
import torch

SIMILARITIES = ("TT", "II", "TI", "IT", "AVG")


def ranks_of_diagonal(sim: torch.Tensor) -> torch.Tensor:
    """1-based rank of the correct candidate sim[i, i] in each row of a square score matrix."""
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected a square [n, n] score matrix, got {tuple(sim.shape)}")
    true = sim.diagonal().unsqueeze(1)
    return (sim >= true).sum(dim=1)  # counts the correct candidate itself, so rank >= 1


def rank_metrics(ranks: torch.Tensor | np.ndarray) -> dict[str, float]:
    """MRR, Recall@1/5/10, mean and median rank of 1-based ranks."""
    r = np.asarray(ranks.cpu() if isinstance(ranks, torch.Tensor) else ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no queries to score")
    return {
        "mrr": float(np.mean(1.0 / r)),
        "r@1": float(np.mean(r <= 1)),
        "r@5": float(np.mean(r <= 5)),
        "r@10": float(np.mean(r <= 10)),
        "mean_rank": float(np.mean(r)),
        "median_rank": float(np.median(r)),
    }


def cross_modal_retrieval(
    image: torch.Tensor, text: torch.Tensor, chunk: int = 4096
) -> dict[str, object]:
    """Image-to-text and text-to-image retrieval over n paired rows (row i of each is a pair).

    Embeddings are L2-normalised here; the n x n scores are built ``chunk`` rows at a time so a
    30k-node test split does not need a 30k x 30k matrix at once.
    """
    if image.shape != text.shape or image.ndim != 2:
        raise ValueError(
            f"expected two [n, d] tensors of one shape, got {image.shape}, {text.shape}"
        )
    img = torch.nn.functional.normalize(image.float(), dim=-1)
    txt = torch.nn.functional.normalize(text.float(), dim=-1)
    n = img.shape[0]
    i2t, t2i = [], []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        idx = torch.arange(s, e)
        for q, c, out in ((img, txt, i2t), (txt, img, t2i)):
            scores = q[s:e] @ c.T  # [rows, n]
            true = scores[torch.arange(e - s), idx].unsqueeze(1)
            out.append((scores >= true).sum(dim=1))
    return {
        "n_test": int(n),
        "i2t": rank_metrics(torch.cat(i2t)),
        "t2i": rank_metrics(torch.cat(t2i)),
    }


def hit_at_k(pos: torch.Tensor, neg: torch.Tensor, k: int = 5) -> float:
    """Share of queries whose positive ranks within the top k among itself and its negatives.

    pos: [q] score of each query's positive; neg: [q, m] scores of its m negatives.
    """
    if neg.ndim != 2 or pos.shape[0] != neg.shape[0]:
        raise ValueError(f"expected pos [q] and neg [q, m], got {pos.shape}, {neg.shape}")
    if pos.numel() == 0:
        raise ValueError("no queries to score")
    rank = 1 + (neg >= pos.unsqueeze(1)).sum(dim=1)
    return float((rank <= k).double().mean())


def topk_accuracy(scores: torch.Tensor, target: torch.Tensor, k: int = 3) -> float:
    """Share of rows whose target column is among the k highest scores (ties count against)."""
    if scores.ndim != 2 or scores.shape[0] != target.shape[0]:
        raise ValueError(
            f"expected scores [q, c] and target [q], got {scores.shape}, {target.shape}"
        )
    if scores.shape[0] == 0:
        raise ValueError("no queries to score")
    true = scores.gather(1, target.long().unsqueeze(1))
    rank = (scores >= true).sum(dim=1)
    return float((rank <= k).double().mean())


def pair_similarities(
    text_a: torch.Tensor, image_a: torch.Tensor, text_b: torch.Tensor, image_b: torch.Tensor
) -> dict[str, torch.Tensor]:
    """RCML's five scores between products a and b (rows broadcast): cosine of
    TT text-text, II image-image, TI a's text vs b's image, IT a's image vs b's text, and AVG
    between each product's averaged text and image embedding."""

    def unit(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x.float(), dim=-1)

    def cos(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (unit(x) * unit(y)).sum(-1)

    ta, ia, tb, ib = unit(text_a), unit(image_a), unit(text_b), unit(image_b)
    return {
        "TT": cos(ta, tb),
        "II": cos(ia, ib),
        "TI": cos(ta, ib),
        "IT": cos(ia, tb),
        "AVG": cos(ta + ia, tb + ib),
    }
