"""RCML's evaluation tasks on a small fixture: relation validity (with relation_ids when the
folder has them), the CLIP baseline with the relation text appended."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.training.config import TrainConfig
from pipeline.training.data import load_category
from pipeline.training.evaluate import before_training, evaluate
from pipeline.training.rcml_eval import (
    clip_features,
    encode_texts,
    score_validity,
    validity_examples,
)
from pipeline.training.run import build_run
from tests.training_fixtures import make_category_folder, one_torch_thread  # noqa: F401

SIMS = {"TT", "II", "TI", "IT", "AVG"}


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return make_category_folder(tmp_path_factory.mktemp("rcml_eval") / "Multi", relation_lists=True)


def test_relation_lists_load_and_fall_back(multi, tmp_path):
    d = load_category(multi)
    assert d.edge_relations(0).tolist() == [d.relation_id[0]]
    assert d.edge_relations(1).tolist() == [d.relation_id[1], (d.relation_id[1] + 1) % 5]
    plain = load_category(make_category_folder(tmp_path / "Plain"))
    assert plain.relation_ptr is None and plain.edge_relations(1).tolist() == [plain.relation_id[1]]


def test_validity_examples_are_true_and_false_relations(multi):
    d = load_category(multi)
    ex = validity_examples(d, "train", max_edges=1000, seed=0)
    assert len(ex["label"]) > 0 and ex["label"].mean() == 0.5  # one negative per positive
    lookup = {(int(s), int(t)): i for i, (s, t) in enumerate(zip(d.src, d.dst, strict=True))}
    train = set(d.nodes("train").tolist())
    for s, t, r, y in zip(ex["src"], ex["dst"], ex["relation"], ex["label"], strict=True):
        assert s in train and t in train
        assert (r in d.edge_relations(lookup[(int(s), int(t))])) == bool(y)
    assert validity_examples(d, "train", 1000, 0)["relation"].tolist() == ex["relation"].tolist()


def test_score_validity_separable_and_too_few():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    x = torch.from_numpy(rng.normal(0, 0.1, (60, 6)) + y[:, None]).float()
    got = score_validity((x[:40], y[:40]), (x[40:], y[40:]))
    assert got["accuracy"] == 1.0 and got["n_test"] == 20 and got["random"] == 0.5
    assert "skipped" in score_validity((x[:0], y[:0]), (x, y))


def test_rcml_reports_validity_and_the_clip_baseline(multi, tmp_path):
    cfg = TrainConfig(
        method="rcml", data=str(multi), out=str(tmp_path), frozen=True, model="acmmg-tiny"
    )
    run = build_run(cfg)
    before = before_training(run)
    m = evaluate(run, "test", before)
    v = m["relation_validity"]
    assert 0 <= v["accuracy"] <= 1 and v["n_train"] > 0 and v["n_test"] > 0
    base = m["clip_relation_text"]
    assert set(base["hit@5"]) == SIMS and set(base["relation_top3_by_similarity"]) == SIMS
    assert 0 <= base["relation_validity"]["accuracy"] <= 1
    # The baseline's text of a product under a relation is CLIP's "title + relation text".
    node = int(run.data.nodes("test")[0])
    f = clip_features(run, np.array([node]), [0, 1], appended=(np.array([0, 1]), np.array([0, 0])))
    want = encode_texts(run, [f"{run.data.titles[node]} {run.data.relation_texts[1]}"])[0]
    assert torch.allclose(f.zt[1, 0], want, atol=1e-5)
    assert not torch.allclose(f.zt[0, 0], f.zt[1, 0])
