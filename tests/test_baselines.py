"""Zero-training baselines on a tiny synthetic category whose structure they must find."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acmmg.evaluator import Evaluator, link_prediction_pairs
from pipeline.errors import UserError
from pipeline.splits import make_splits, split_labels
from pipeline.tasks.baselines import (
    BaselineParams,
    baselines_markdown,
    folder_baselines,
    probe_subsample,
    task_baselines,
)
from pipeline.tasks.edge_splits import edge_splits

N, D, CLASSES = 240, 16, 4


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def category():
    """Classes are directions in embedding space; products link within their class; each
    product's title is its image plus a little noise."""
    rng = np.random.default_rng(0)
    labels = np.arange(N) % CLASSES
    centers = rng.normal(size=(CLASSES, D))
    image = _unit(centers[labels] + 0.6 * rng.normal(size=(N, D)))
    title = _unit(image + 0.2 * rng.normal(size=(N, D)))
    description = _unit(rng.normal(size=(N, D)))  # carries nothing
    src = rng.integers(0, N, 2000)
    dst = (src + CLASSES * rng.integers(1, N // CLASSES, 2000)) % N  # same class
    keep = src != dst
    es = edge_splits(src[keep], dst[keep], N, seed=0, negatives=10, hard_fraction=0.0)
    split = np.array(split_labels(*make_splits(N, seed=0)))
    return {
        "embeddings": {"image": image, "title": title, "description": description},
        "labels": labels,
        "split": split,
        "edge_splits": es,
        "edges": (src[keep], dst[keep]),
    }


@pytest.fixture(scope="module")
def result(category):
    c = category
    return task_baselines(c["embeddings"], c["labels"], c["split"], c["edge_splits"])


def test_the_baselines_find_the_structure(result):
    probe = result["node_classification"]["probe"]
    assert list(probe) == ["image", "title", "description"]  # the published order
    assert probe["image"]["acc"] > 0.9 and probe["title"]["acc"] > 0.9
    assert probe["description"]["acc"] < 0.5  # noise: about chance (0.25)
    assert result["node_classification"]["test_nodes"] == 72  # 30% of 240
    lp = result["link_prediction"]
    assert lp["negatives_per_positive"] == 10
    assert lp["cosine"]["image"]["mrr"] > lp["cosine"]["description"]["mrr"]
    rt = result["retrieval"]
    assert rt["text"] == "title" and rt["test_nodes"] == 72
    assert rt["cosine"]["i2t"]["r@10"] > 0.8 and rt["cosine"]["t2i"]["mrr"] > 0.5


def test_numbers_are_the_evaluators(category, result):
    c = category
    test = c["split"] == "test"
    out = Evaluator("retrieval").eval(
        {"image": c["embeddings"]["image"][test], "text": c["embeddings"]["title"][test]}
    )
    assert result["retrieval"]["cosine"]["i2t"]["mrr"] == round(out["i2t"]["mrr"], 4)
    pos, neg = link_prediction_pairs(c["edge_splits"], "test")
    x = c["embeddings"]["image"]
    lp = Evaluator("link-prediction").eval(
        {
            "y_pred_pos": (x[pos[:, 0]] * x[pos[:, 1]]).sum(-1),
            "y_pred_neg": (x[neg[..., 0]] * x[neg[..., 1]]).sum(-1),
        }
    )
    assert result["link_prediction"]["cosine"]["image"]["hits@10"] == pytest.approx(
        lp["hits@10"], abs=1e-4
    )


def test_deterministic_json(category, result):
    c = category
    again = task_baselines(c["embeddings"], c["labels"], c["split"], c["edge_splits"])
    assert json.dumps(again, sort_keys=True) == json.dumps(result, sort_keys=True)
    floats = [v for task in result.values() for v in _leaves(task) if isinstance(v, float)]
    assert floats and all(v == round(v, 4) for v in floats)


def _leaves(d):
    for v in d.values():
        yield from _leaves(v) if isinstance(v, dict) else [v]


def test_probe_subsample_is_capped_and_seeded():
    nodes = np.arange(0, 1000, 3)
    sub = probe_subsample(nodes, 50, seed=0)
    assert sub.size == 50 and np.isin(sub, nodes).all() and (np.diff(sub) > 0).all()
    assert (probe_subsample(nodes, 50, seed=0) == sub).all()
    assert not (probe_subsample(nodes, 50, seed=1) == sub).all()
    assert probe_subsample(nodes, 5000, seed=0) is nodes


def test_folder_baselines_read_a_published_folder(tmp_path, category, result):
    c = category
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "node_attributes").mkdir()
    for kind, x in c["embeddings"].items():
        np.save(tmp_path / "embeddings" / f"{kind}_embeds.npy", x)
    order = np.random.default_rng(1).permutation(N)  # row order must not matter
    pq.write_table(
        pa.table({"node_id": order, "asin": [f"A{i}" for i in order], "split": c["split"][order]}),
        tmp_path / "splits.parquet",
    )
    for k, part in enumerate(np.array_split(order, 2)):
        pq.write_table(
            pa.table({"node_id": part, "class": c["labels"][part]}),
            tmp_path / "node_attributes" / f"node_attributes_{k}.parquet",
        )
    pq.write_table(c["edge_splits"], tmp_path / "edge_splits.parquet")
    assert folder_baselines(tmp_path) == result
    (tmp_path / "edge_splits.parquet").unlink()
    (tmp_path / "embeddings" / "image_embeds.npy").unlink()  # a text-only category
    text_only = folder_baselines(tmp_path, BaselineParams(probe_max_train=40))
    assert text_only["link_prediction"] == {"skipped": "no edge splits"}
    assert "skipped" in text_only["retrieval"]
    assert list(text_only["node_classification"]["probe"]) == ["title", "description"]
    assert text_only["node_classification"]["train_nodes"] == 40


def test_markdown_tables(result):
    md = baselines_markdown(result)
    assert "| image | " in md and "| i2t | " in md and "Hits@10" in md
    assert f"{result['retrieval']['cosine']['i2t']['mrr']:.4f}" in md
    assert baselines_markdown({"retrieval": {"skipped": "x"}}) == ""


def test_bad_shapes_are_user_errors(category):
    c = category
    with pytest.raises(UserError, match="expected"):
        task_baselines({"image": c["embeddings"]["image"][:10]}, c["labels"], c["split"], None)
    with pytest.raises(UserError, match="split labels"):
        task_baselines(c["embeddings"], c["labels"], c["split"][:5], None)
