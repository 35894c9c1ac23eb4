"""acmmg.Evaluator against hand-computed cases, scikit-learn and the training module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from acmmg.evaluator import Evaluator, link_prediction_pairs, retrieval_metrics

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- link prediction


def test_link_prediction_mrr_and_hits_by_hand_with_ogb_ties():
    pos = np.array([0.5, 0.2, 0.9, 0.3])
    neg = np.array(
        [
            [0.5, 0.6, 0.1],  # one above, one tie: rank 1 + 1 + 0.5 = 2.5
            [0.1, 0.1, 0.1],  # none above: rank 1
            [0.9, 0.9, 0.9],  # three ties: rank 1 + 1.5 = 2.5
            [0.4, 0.5, 0.6],  # three above: rank 4
        ]
    )
    out = Evaluator("link-prediction").eval({"y_pred_pos": pos, "y_pred_neg": neg})
    assert out["mrr"] == pytest.approx((1 / 2.5 + 1 + 1 / 2.5 + 1 / 4) / 4)
    assert out["hits@1"] == pytest.approx(1 / 4)
    assert out["hits@3"] == pytest.approx(3 / 4)
    assert out["hits@10"] == 1.0
    assert set(out) == {"mrr", "hits@1", "hits@3", "hits@10"}


def test_link_prediction_hits_at_10_boundary():
    # 9 negatives above -> rank 10 (a hit); 9 above and one tie -> rank 10.5 (a miss)
    neg = np.zeros((2, 20))
    neg[0, :9] = neg[1, :9] = 1.0
    neg[1, 9] = 0.5
    out = Evaluator("link-prediction").eval({"y_pred_pos": [0.5, 0.5], "y_pred_neg": neg})
    assert out["hits@10"] == 0.5
    assert out["mrr"] == pytest.approx((1 / 10 + 1 / 10.5) / 2)


def test_link_prediction_collapsed_scores_get_the_middle_rank():
    # OGB's rule: all equal -> rank 1 + k / 2, never a lucky first place
    out = Evaluator("link-prediction").eval(
        {"y_pred_pos": np.ones(3), "y_pred_neg": np.ones((3, 4))}
    )
    assert out["mrr"] == pytest.approx(1 / 3)
    assert out["hits@1"] == 0.0 and out["hits@3"] == 1.0


def test_link_prediction_equals_training_hit_at_k_without_ties():
    torch = pytest.importorskip("torch")
    from pipeline.training import metrics as M

    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=200), rng.normal(size=(200, 30))
    out = Evaluator("link-prediction").eval({"y_pred_pos": pos, "y_pred_neg": neg})
    for k in (1, 3, 10):
        assert out[f"hits@{k}"] == pytest.approx(
            M.hit_at_k(torch.from_numpy(pos), torch.from_numpy(neg), k=k)
        )


def test_inputs_numpy_lists_and_tensors_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(size=50).astype(np.float32), rng.normal(size=(50, 7)).astype(np.float32)
    ev = Evaluator("link_prediction")  # underscores are accepted too
    ref = ev.eval({"y_pred_pos": pos, "y_pred_neg": neg})
    assert ev.eval({"y_pred_pos": pos.tolist(), "y_pred_neg": neg.tolist()}) == ref
    t = {"y_pred_pos": torch.from_numpy(pos), "y_pred_neg": torch.from_numpy(neg)}
    assert ev.eval(t) == ref
    assert ev.eval({k: v.requires_grad_() for k, v in t.items()}) == ref
    bf = {k: v.detach().bfloat16() for k, v in t.items()}
    ref_bf = ev.eval({k: v.float().numpy() for k, v in bf.items()})
    assert ev.eval(bf) == ref_bf


def test_torch_is_not_imported_for_numpy_inputs():
    code = (
        "import sys, numpy as np\n"
        "from acmmg.evaluator import Evaluator\n"
        "Evaluator('link-prediction').eval({'y_pred_pos': np.ones(2), 'y_pred_neg': np.ones((2, 3))})\n"
        "Evaluator('retrieval').eval({'image': np.eye(3), 'text': np.eye(3)})\n"
        "Evaluator('node-classification').eval({'y_true': [0, 1], 'y_pred': [0, 0]})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'pipeline' not in sys.modules, 'the builder package was imported'\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"y_pred_pos": np.ones(3)}, "missing key"),
        ({"y_pred_pos": np.ones(3), "y_pred_neg": np.ones(3)}, r"\[n, k\]"),
        ({"y_pred_pos": np.ones(3), "y_pred_neg": np.ones((2, 4))}, r"\[n, k\]"),
        ({"y_pred_pos": np.ones((3, 1)), "y_pred_neg": np.ones((3, 4))}, r"shape \[n\]"),
        ({"y_pred_pos": [np.nan, 1.0], "y_pred_neg": np.ones((2, 4))}, "NaN"),
        ({"y_pred_pos": ["a", "b"], "y_pred_neg": np.ones((2, 4))}, "numbers"),
        ({"y_pred_pos": [], "y_pred_neg": np.ones((0, 4))}, "no positive"),
    ],
)
def test_link_prediction_refuses_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        Evaluator("link-prediction").eval(bad)


def test_unknown_task_names_the_tasks():
    with pytest.raises(ValueError, match="node-classification, link-prediction, retrieval"):
        Evaluator("ogbl-collab")


def test_formats_describe_inputs_and_outputs():
    for task, keys_in, keys_out in [
        ("node-classification", ["y_true", "y_pred"], ["acc", "macro_f1"]),
        ("link-prediction", ["y_pred_pos", "y_pred_neg"], ["mrr", "hits@1", "hits@10"]),
        ("retrieval", ["y_pred", "image", "text"], ["i2t", "t2i", "r@5"]),
    ]:
        ev = Evaluator(task)
        assert ev.expected_input_format.startswith(
            f"==== Expected input format of Evaluator for {task}"
        )
        assert all(k in ev.expected_input_format for k in keys_in)
        assert all(k in ev.expected_output_format for k in keys_out)


def test_link_prediction_pairs_from_a_table():
    table = {
        "src": [0, 1, 0, 0, 0, 2, 2, 2, 1, 1, 1],
        "dst": [1, 2, 3, 4, 5, 3, 0, 1, 4, 0, 5],
        "split": ["train", "train"] + ["test"] * 3 + ["test"] * 3 + ["val"] * 3,
        "label": [1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0],
        "query": [0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0],
    }
    pos, neg = link_prediction_pairs(table, "test")
    assert pos.tolist() == [[0, 3], [2, 3]]
    assert neg.tolist() == [[[0, 4], [0, 5]], [[2, 0], [2, 1]]]
    for other in (pa.table(table), pl.DataFrame(table)):  # each filtered by its own library
        p2, n2 = link_prediction_pairs(other, "test")
        assert (p2 == pos).all() and (n2 == neg).all()
    pos, neg = link_prediction_pairs(table, "valid")  # OGB's name for val
    assert pos.tolist() == [[1, 4]] and neg.shape == (1, 2, 2)
    table["query"][7] = 0  # test query 0 now has three negatives, query 1 one
    with pytest.raises(ValueError, match="unequal"):
        link_prediction_pairs(table, "test")
    with pytest.raises(ValueError, match="no positive"):
        link_prediction_pairs(table, "nope")


# ------------------------------------------------------------------ node classification


def test_node_classification_by_hand():
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0]
    out = Evaluator("node-classification").eval({"y_true": y_true, "y_pred": y_pred})
    # class 0: tp 1, fp 1, fn 1 -> F1 0.5; class 1: tp 2, fp 1 -> 0.8; class 2: tp 0 -> 0
    assert out == {"acc": pytest.approx(3 / 5), "macro_f1": pytest.approx((0.5 + 0.8 + 0) / 3)}


def test_node_classification_shapes_and_scores():
    ev = Evaluator("node-classification")
    y_true = np.array([[2], [0], [1]])  # OGB's [n, 1]
    scores = np.array([[0.1, 0.2, 0.7], [0.9, 0.0, 0.1], [0.5, 0.4, 0.1]])  # argmax 2, 0, 0
    out = ev.eval({"y_true": y_true, "y_pred": scores})
    assert out["acc"] == pytest.approx(2 / 3)
    assert ev.eval({"y_true": y_true, "y_pred": scores.argmax(1)[:, None]}) == out
    with pytest.raises(ValueError, match="nodes"):
        ev.eval({"y_true": [0, 1], "y_pred": [0, 1, 1]})
    with pytest.raises(ValueError, match="integers"):
        ev.eval({"y_true": [0.5, 1], "y_pred": [0, 1]})


def test_node_classification_equals_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 7, size=500)
    y_pred = np.where(
        rng.random(500) < 0.4, y_true, rng.integers(0, 9, size=500)
    )  # 7, 8 only predicted
    out = Evaluator("node-classification").eval({"y_true": y_true, "y_pred": y_pred})
    assert out["acc"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert out["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0)
    )


# ---------------------------------------------------------------------------- retrieval


def test_retrieval_by_hand():
    # The training module's hand example (tests/test_training_metrics.py): i2t ranks 1, 2, 3;
    # t2i ranks 1, 2, 2.
    img = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    txt = np.array([[2.0, 0.0], [0.6, 0.8], [0.0, 3.0]])
    out = Evaluator("retrieval").eval({"image": img, "text": txt})
    assert out["n_queries"] == 3
    assert out["i2t"]["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert out["i2t"]["r@1"] == pytest.approx(1 / 3)
    assert out["t2i"]["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert out["t2i"]["mean_rank"] == pytest.approx(5 / 3)
    sim = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (
        txt / np.linalg.norm(txt, axis=1, keepdims=True)
    ).T
    assert Evaluator("retrieval").eval({"y_pred": sim}) == out


def test_retrieval_ties_count_against_the_query():
    out = Evaluator("retrieval").eval({"y_pred": np.ones((4, 4))})
    assert out["i2t"]["mean_rank"] == 4.0 and out["t2i"]["r@1"] == 0.0


def test_retrieval_equals_training_metrics_on_the_same_matrix():
    torch = pytest.importorskip("torch")
    from pipeline.training import metrics as M

    g = torch.Generator().manual_seed(3)
    for sim in (
        torch.randn(61, 61, generator=g),
        torch.randint(0, 4, (40, 40), generator=g).float(),
    ):
        out = Evaluator("retrieval").eval({"y_pred": sim})  # the second one is full of ties
        assert out["i2t"] == M.rank_metrics(M.ranks_of_diagonal(sim))
        assert out["t2i"] == M.rank_metrics(M.ranks_of_diagonal(sim.T))
        assert retrieval_metrics({"y_pred": sim.numpy()}, chunk=7) == out


def test_retrieval_equals_training_metrics_on_embeddings():
    torch = pytest.importorskip("torch")
    from pipeline.training import metrics as M

    g = torch.Generator().manual_seed(4)
    img, txt = torch.randn(97, 16, generator=g), torch.randn(97, 16, generator=g)
    ref = M.cross_modal_retrieval(img, txt)
    out = Evaluator("retrieval").eval({"image": img, "text": txt})
    assert out["n_queries"] == ref["n_test"]
    assert out["i2t"] == ref["i2t"] and out["t2i"] == ref["t2i"]
    assert retrieval_metrics({"image": img.numpy(), "text": txt.numpy()}, chunk=10) == out


def test_retrieval_refuses_bad_input():
    ev = Evaluator("retrieval")
    with pytest.raises(ValueError, match="square"):
        ev.eval({"y_pred": np.ones((3, 4))})
    with pytest.raises(ValueError, match="one shape"):
        ev.eval({"image": np.ones((3, 4)), "text": np.ones((2, 4))})
    with pytest.raises(ValueError, match="missing key"):
        ev.eval({"image": np.ones((3, 4))})
