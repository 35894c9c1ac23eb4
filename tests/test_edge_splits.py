"""Link-prediction splits: no leakage, negatives that are not edges, hard ones at distance 2,
exact counts, sorted and deterministic output."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from acmmg.evaluator import Evaluator, link_prediction_pairs
from pipeline.errors import UserError
from pipeline.splits import split_sizes
from pipeline.tasks.edge_splits import SCHEMA, edge_split_counts, edge_splits

N = 400


def _graph(seed: int = 0, n: int = N, m: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """A clustered random graph (so 2-hop non-neighbours exist), with duplicate and reversed
    rows that the splits must merge."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = (src + rng.integers(1, 40, m)) % n  # local links: many triangles
    keep = src != dst
    src, dst = src[keep], dst[keep]
    return np.concatenate([src, dst[:50]]), np.concatenate([dst, src[:50]])


def _unique_pairs(src, dst) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist(), strict=True)}


def _rows(table, **where):
    mask = np.ones(table.num_rows, dtype=bool)
    for col, value in where.items():
        mask &= np.asarray(table[col]) == value
    return {c: np.asarray(table[c])[mask] for c in table.column_names}


@pytest.fixture(scope="module")
def graph():
    return _graph()


@pytest.fixture(scope="module")
def table(graph):
    return edge_splits(*graph, N, seed=3, negatives=20, hard_fraction=0.5)


def test_schema_and_counts(graph, table):
    assert table.schema == SCHEMA
    edges = _unique_pairs(*graph)
    n_train, n_val, n_test = split_sizes(len(edges), (0.8, 0.1, 0.1))
    counts = edge_split_counts(table)
    assert (counts["train_edges"], counts["val_edges"], counts["test_edges"]) == (
        n_train,
        n_val,
        n_test,
    )
    assert counts["negatives_per_positive"] == 20
    assert table.num_rows == n_train + 21 * (n_val + n_test)
    assert counts["hard_negatives"] == 10 * (n_val + n_test)  # no fallback in this graph
    assert counts["hard_share"] == 0.5


def test_positives_partition_the_deduplicated_edges(graph, table):
    pos = _rows(table, label=1)
    assert all(pos["src"] < pos["dst"])
    pairs = list(zip(pos["src"].tolist(), pos["dst"].tolist(), strict=True))
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == _unique_pairs(*graph)


def test_no_val_or_test_edge_nor_its_reverse_in_the_training_graph(table):
    train = _rows(table, split="train")
    assert set(train["label"].tolist()) == {1}  # train rows are positives only
    train_graph = set(zip(train["src"].tolist(), train["dst"].tolist(), strict=True))
    train_graph |= {(b, a) for a, b in train_graph}
    for split in ("val", "test"):
        held = _rows(table, split=split, label=1)
        for a, b in zip(held["src"].tolist(), held["dst"].tolist(), strict=True):
            assert (a, b) not in train_graph and (b, a) not in train_graph


def test_negatives_are_never_edges_nor_repeated(graph, table):
    edges = _unique_pairs(*graph)
    for split in ("val", "test"):
        pos, neg = link_prediction_pairs(table, split)
        assert neg.shape == (pos.shape[0], 20, 2)
        q = neg[:, 0, 0]
        assert (neg[:, :, 0] == q[:, None]).all()  # one query node per positive ...
        assert ((q == pos[:, 0]) | (q == pos[:, 1])).all()  # ... one of its endpoints
        for u, row in zip(q.tolist(), neg.tolist(), strict=True):
            partners = [v for _, v in row]
            assert len(set(partners)) == len(partners)
            assert u not in partners
            assert not any((min(u, v), max(u, v)) in edges for v in partners)


def test_hard_negatives_are_at_distance_two_in_the_training_graph(graph, table):
    train = _rows(table, split="train")
    a = sp.coo_matrix(
        (np.ones(train["src"].size), (train["src"], train["dst"])), shape=(N, N)
    ).tocsr()
    a = ((a + a.T) > 0).astype(np.int64)
    two_hop = (a @ a).tocsr()
    neg = _rows(table, label=0)
    hard, src, dst = neg["hard"], neg["src"], neg["dst"]
    assert hard.any() and (~hard).any()
    assert (np.asarray(two_hop[src[hard], dst[hard]]).ravel() > 0).all()
    assert (np.asarray(a[src[hard], dst[hard]]).ravel() == 0).all()
    # uniform ones land anywhere: most of them are not 2-hop neighbours in this sparse graph
    assert (np.asarray(two_hop[src[~hard], dst[~hard]]).ravel() == 0).mean() > 0.5


def test_rows_are_sorted(table):
    order = {"train": 0, "val": 1, "test": 2}
    split = np.array([order[s] for s in np.asarray(table["split"]).tolist()])
    label, query, dst = (np.asarray(table[c]) for c in ("label", "query", "dst"))
    keys = np.lexsort((dst, -label.astype(np.int64), query, split))
    assert (keys == np.arange(table.num_rows)).all()
    pos = _rows(table, split="test", label=1)
    assert (pos["query"] == np.arange(pos["query"].size)).all()
    assert (np.diff(pos["src"] * N + pos["dst"]) > 0).all()  # queries in (src, dst) order


def test_deterministic_and_stable(graph, table):
    src, dst = graph
    again = edge_splits(src, dst, N, seed=3, negatives=20, hard_fraction=0.5)
    assert again.equals(table)
    # row order of the input does not matter, nor which way round an edge is given
    perm = np.random.default_rng(9).permutation(src.size)
    assert edge_splits(dst[perm], src[perm], N, seed=3, negatives=20).equals(table)
    # byte-identical parquet
    bufs = []
    for t in (table, again):
        buf = io.BytesIO()
        pq.write_table(t, buf, compression="zstd")
        bufs.append(buf.getvalue())
    assert bufs[0] == bufs[1]
    other = edge_splits(src, dst, N, seed=4, negatives=20)
    assert not other.equals(table)


def test_an_edge_keeps_its_split_when_another_is_removed(graph, table):
    src, dst = graph
    pos = _rows(table, label=1)
    before = dict(zip(zip(pos["src"].tolist(), pos["dst"].tolist()), pos["split"].tolist()))
    gone = (int(pos["src"][0]), int(pos["dst"][0]))
    keep = ~(((src == gone[0]) & (dst == gone[1])) | ((src == gone[1]) & (dst == gone[0])))
    after_t = edge_splits(src[keep], dst[keep], N, seed=3, negatives=20)
    after = _rows(after_t, label=1)
    moved = sum(
        before[e] != s
        for e, s in zip(zip(after["src"].tolist(), after["dst"].tolist()), after["split"].tolist())
    )
    assert moved <= 2  # only edges at the cut points can move


def test_scores_feed_the_evaluator(table):
    pos, neg = link_prediction_pairs(table, "test")
    out = Evaluator("link-prediction").eval(
        {"y_pred_pos": np.ones(len(pos)), "y_pred_neg": np.zeros(neg.shape[:2])}
    )
    assert out["mrr"] == 1.0


def test_dense_graph_gets_fewer_negatives_for_everyone(caplog):
    n = 12
    iu = np.triu_indices(n, 1)
    # node 0 misses 1, 2 and 3; those miss only 0; nodes 4..11 are adjacent to everyone
    keep = ~((iu[0] == 0) & (iu[1] < 4))
    t = edge_splits(iu[0][keep], iu[1][keep], n, seed=0, negatives=5, ratios=(0.4, 0.3, 0.3))
    counts = edge_split_counts(t)
    held = _rows(t, label=1)
    held = {s: held["src"][held["split"] == s] for s in ("val", "test")}
    # edges between two universal nodes cannot be ranked against anything: moved to train
    assert all(np.isin(held[s], [0, 1, 2, 3]).all() for s in held)
    assert "moved to train" in caplog.text
    # the query is the endpoint with room (0 for its edges, 1-3 for theirs): one negative each
    assert counts["negatives_per_positive"] == 1
    for split in ("val", "test"):
        pos, neg = link_prediction_pairs(t, split)
        assert neg.shape == (len(pos), 1, 2)
        assert np.isin(neg[:, 0, 0], [0, 1, 2, 3]).all()


def test_complete_graph_keeps_every_edge_in_train():
    iu = np.triu_indices(6, 1)
    counts = edge_split_counts(edge_splits(iu[0], iu[1], 6, ratios=(0.5, 0.25, 0.25)))
    assert (counts["train_edges"], counts["val_edges"], counts["test_edges"]) == (15, 0, 0)


@pytest.mark.parametrize(
    "src, dst, n, kwargs, message",
    [
        ([0, 1], [1, 1], 3, {}, "self-loop"),
        ([0, 1], [1, 5], 3, {}, r"node ids in \[0, 3\)"),
        ([0, 1], [1, 2, 0], 3, {}, "one length"),
        ([0, 1], [1, 2], 3, {"ratios": (1, -1, 0)}, "non-negative"),
        ([0, 1], [1, 2], 3, {"negatives": 0}, "at least 1"),
        ([0, 1], [1, 2], 3, {"hard_fraction": 2.0}, "between 0 and 1"),
    ],
)
def test_bad_input_is_a_user_error(src, dst, n, kwargs, message):
    with pytest.raises(UserError, match=message):
        edge_splits(src, dst, n, **kwargs)
