"""Retrieval metrics of the training module against hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.training import metrics as M


def test_ranks_of_diagonal_by_hand():
    sim = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.5, 0.2], [0.1, 0.7, 0.4]])
    # row 0: 0.9 is the highest -> 1; row 1: 0.8 beats 0.5 -> 2; row 2: 0.7 beats 0.4 -> 2
    assert M.ranks_of_diagonal(sim).tolist() == [1, 2, 2]


def test_ties_count_against_the_query():
    sim = torch.ones(4, 4)  # a collapsed model: every candidate scores the same
    assert M.ranks_of_diagonal(sim).tolist() == [4, 4, 4, 4]
    assert M.hit_at_k(torch.tensor([0.5]), torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.5]]), k=5) == 0.0
    assert M.topk_accuracy(torch.tensor([[1.0, 1.0, 1.0, 1.0]]), torch.tensor([0]), k=3) == 0.0


def test_rank_metrics_by_hand():
    m = M.rank_metrics(torch.tensor([1, 2, 2]))
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["r@1"] == pytest.approx(1 / 3)
    assert m["r@5"] == 1.0 and m["r@10"] == 1.0
    assert m["mean_rank"] == pytest.approx(5 / 3)
    assert m["median_rank"] == 2.0
    m = M.rank_metrics([1, 3, 6, 12])
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 6 + 1 / 12) / 4)
    assert (m["r@1"], m["r@5"], m["r@10"]) == (0.25, 0.5, 0.75)
    assert m["mean_rank"] == pytest.approx(5.5)
    assert m["median_rank"] == pytest.approx(4.5)  # even count: mean of the middle two
    with pytest.raises(ValueError):
        M.rank_metrics([])


def test_cross_modal_retrieval_by_hand():
    # Three images and three texts in 2-D. Cosines (image row, text column):
    #   i0=(1,0):      t0=(1,0) 1.0   t1=(0.6,0.8) 0.6   t2=(0,1) 0.0   -> rank 1
    #   i1=(0,1):      t0 0.0         t1 0.8             t2 1.0         -> rank 2
    #   i2=(0.8,0.6):  t0 0.8         t1 0.96            t2 0.6         -> rank 3
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    txt = torch.tensor([[2.0, 0.0], [0.6, 0.8], [0.0, 3.0]])  # scale must not matter
    out = M.cross_modal_retrieval(img, txt)
    assert out["n_test"] == 3
    assert out["i2t"]["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert out["i2t"]["r@1"] == pytest.approx(1 / 3)
    assert out["i2t"]["mean_rank"] == pytest.approx(2.0)
    assert out["i2t"]["median_rank"] == 2.0
    # text to image: t0 finds i0 first (1); for t1, i2 (0.96) beats its i1 (0.8) (2);
    # for t2, i1 (1.0) beats its i2 (0.6) (2)
    assert out["t2i"]["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert out["t2i"]["mean_rank"] == pytest.approx(5 / 3)


def test_cross_modal_retrieval_chunks_agree():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(37, 8, generator=g), torch.randn(37, 8, generator=g)
    assert M.cross_modal_retrieval(img, txt, chunk=5) == M.cross_modal_retrieval(img, txt)


def test_hit_at_5_by_hand():
    pos = torch.tensor([0.5, 0.2, 0.9])
    neg = torch.tensor(
        [
            [0.1, 0.6, 0.7, 0.8, 0.9, 0.0],  # 4 negatives above -> rank 5 -> hit
            [0.3, 0.4, 0.5, 0.6, 0.7, 0.0],  # 5 above -> rank 6 -> miss
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # none above -> hit
        ]
    )
    assert M.hit_at_k(pos, neg, k=5) == pytest.approx(2 / 3)
    assert M.hit_at_k(pos, neg, k=1) == pytest.approx(1 / 3)
    # padding (a query with fewer negatives) is -inf and never ranks ahead
    assert M.hit_at_k(torch.tensor([0.0]), torch.tensor([[float("-inf")] * 20])) == 1.0


def test_top3_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.8, 0.7, 0.6, 0.5], [0.4, 0.3, 0.2, 0.1]])
    target = torch.tensor([3, 2, 0])  # ranks 3, 3, 1 -> all within top 3
    assert M.topk_accuracy(scores, target, k=3) == 1.0
    assert M.topk_accuracy(scores, torch.tensor([0, 3, 3]), k=3) == pytest.approx(0.0)
    assert M.topk_accuracy(scores, target, k=1) == pytest.approx(1 / 3)


def test_pair_similarities_by_hand():
    ta, ia = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    tb, ib = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])
    s = M.pair_similarities(ta, ia, tb, ib)
    assert float(s["TT"]) == pytest.approx(1.0)
    assert float(s["II"]) == pytest.approx(0.0)
    assert float(s["TI"]) == pytest.approx(1.0)
    assert float(s["IT"]) == pytest.approx(0.0)
    # averages (0.5, 0.5) and (1, 0): cosine 1/sqrt(2)
    assert float(s["AVG"]) == pytest.approx(1 / math.sqrt(2))
