"""SLIP's classification evaluations and Fig. 5 pairs, on hand-made data."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pipeline.training.classify import SHOTS, few_shot, linear_probe, sample_shots, zero_shot
from pipeline.training.hops import hop_pairs, hop_similarity
from tests.training_fixtures import one_torch_thread  # noqa: F401


def _separable(n_per_class: int = 40, classes: int = 5, dim: int = 64, seed: int = 0):
    """Class centres far apart, small noise: linearly separable."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim)) * 5
    labels = np.repeat(np.arange(classes), n_per_class)
    x = centres[labels] + rng.normal(0, 0.5, (len(labels), dim))
    return torch.from_numpy(x).float(), labels


def test_linear_probe_separates_separable_embeddings():
    x, y = _separable()
    train = np.arange(len(y)) % 2 == 0
    probe = linear_probe(x[train], y[train], num_classes=5)
    pred = probe(x[~train]).argmax(dim=1).numpy()
    assert np.mean(pred == y[~train]) == pytest.approx(1.0)


def test_few_shot_on_separable_embeddings_scores_one():
    x, y = _separable()
    rng = np.random.default_rng(1)
    first_half = np.arange(len(y)) % 40 < 20  # 20 support nodes of each class
    support, query = np.flatnonzero(first_half), np.flatnonzero(~first_half)
    feats = {"image": x, "noise": torch.from_numpy(rng.normal(size=x.shape)).float()}
    out = few_shot(feats, y, support, query, num_classes=5, seeds=3, seed=0)
    assert set(out) == {str(k) for k in SHOTS}
    for k in SHOTS:
        assert out[str(k)]["image"]["mean"] == pytest.approx(1.0)
        assert len(out[str(k)]["image"]["runs"]) == 3
        assert out[str(k)]["noise"]["mean"] < 0.5  # chance is 0.2
    assert out["16"]["support_nodes"] == 5 * 16 and out["1"]["support_nodes"] == 5
    assert few_shot(feats, y, support, query, 5, seeds=3, seed=0) == out  # seeded


def test_sample_shots_takes_k_per_class_or_all():
    labels = np.array([0, 0, 0, 1, 2, 2])
    got = sample_shots(labels, np.arange(6), 2, np.random.default_rng(0))
    assert sorted(np.bincount(labels[got]).tolist()) == [1, 2, 2]


def test_zero_shot_by_hand():
    feats = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.9, 0.0]])
    prompts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert zero_shot(feats, prompts, np.array([0, 1, 1])) == {"accuracy": 2 / 3, "n": 3}


def test_hop_pairs_are_at_their_distance_in_the_split_subgraph():
    g = nx.random_regular_graph(4, 60, seed=3)
    edges = np.array(g.edges())
    adj = sp.coo_matrix(
        (
            np.ones(2 * len(edges)),
            (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]]),
        )
    ).tocsr()
    nodes = np.arange(0, 60, 2)[:25]  # a "split": distances inside its induced subgraph
    sub = g.subgraph(nodes.tolist())
    pairs = hop_pairs(adj, nodes, max_anchors=10, per_anchor=5, seed=0)
    for h in ("1", "2", "3"):
        for a, b in pairs[h]:
            d = nx.shortest_path_length(sub, int(nodes[a]), int(nodes[b]))
            assert d == int(h)
    assert all(a == b for a, b in pairs["0"]) and len(pairs["0"]) == 10
    assert all(a != b for a, b in pairs["random"])
    # cos(image of i, text of j): identical modalities give 1 at hop 0
    e = torch.randn(len(nodes), 8)
    summary, values = hop_similarity(e, e, pairs)
    assert summary["0"]["mean"] == pytest.approx(1.0) and summary["0"]["pairs"] == 10
    assert set(values) <= set(summary)
