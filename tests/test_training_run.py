"""Tiny end-to-end runs of ``acmmg train`` / ``acmmg eval`` on generated category folders.

Real parts throughout: open_clip's model code (random-weight "acmmg-tiny", 64 px), a real
images.tar, real parquet files, the real CLI. Most checks use the fast --frozen modes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.training.checkpoint import load_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.training.evaluate import evaluate_loss
from pipeline.training.loop import fit
from pipeline.training.optim import (
    EarlyStopping,
    layer_ids,
    layer_lr,
    param_groups,
    warmup_decay,
    warmup_for,
)
from pipeline.training.run import build_run
from tests.training_fixtures import make_category_folder, one_torch_thread  # noqa: F401

TINY = ("--model", "acmmg-tiny")  # random weights: none can be downloaded here
SLIP_KEYS = {"mrr", "r@1", "r@5", "r@10", "mean_rank", "median_rank"}
SIMS = {"TT", "II", "TI", "IT", "AVG"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_category_folder(tmp_path_factory.mktemp("training_run") / "Demo")


def _random_mrr(n: int) -> float:
    """Expected MRR of a random ranking of n candidates: H(n) / n."""
    return sum(1.0 / k for k in range(1, n + 1)) / n


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


def test_slip_frozen_cli_learns_and_beats_random(folder, tmp_path, capsys):
    run = tmp_path / "slip"
    args = ["train", "slip", "--data", folder, "--frozen", "--epochs", 12, "--batch-size", 16]
    assert _cli(*args, "--out", run, "--no-progress") == 0
    m = _read(run / "metrics.json")
    assert m["n_test"] == 12
    for d in ("i2t", "t2i"):
        assert set(m[d]) >= SLIP_KEYS
        assert 1 <= m[d]["mean_rank"] <= 12 and 0 < m[d]["mrr"] <= 1
    assert (run / "checkpoints" / "best.pt").exists() and (run / "checkpoints" / "last.pt").exists()
    hist = _read(run / "history.json")
    assert hist[-1]["train"]["loss"] < hist[0]["train"]["loss"]
    assert set(hist[0]["train"]) == {"loss", "clip", "graph", "aux"}
    # Table 2's mean MRR, the chance level, and what else SLIP reports (Fig. 5, few-shot).
    assert m["mean_mrr"] == pytest.approx((m["i2t"]["mrr"] + m["t2i"]["mrr"]) / 2, abs=1e-5)
    assert m["random"]["mrr"] == pytest.approx(_random_mrr(12), abs=1e-5)
    assert "skipped" in m["zero_shot"]  # the fixture's embeddings come from no model
    assert set(m["few_shot"]) >= {"1", "5", "10", "16"}
    for k in ("1", "16"):
        assert set(m["few_shot"][k]) >= {"image", "fused", "graph"}
        assert 0 <= m["few_shot"][k]["fused"]["mean"] <= 1
        assert len(m["few_shot"][k]["image"]["runs"]) == 5
    hops = m["hop_similarity"]
    assert set(hops) == {"before", "after"} and set(hops["after"]) == {"0", "1", "2", "3", "random"}
    # trained: a product's own image and text are closer than random pairs, unlike before
    assert hops["after"]["0"]["mean"] > hops["after"]["random"]["mean"] + 0.2
    assert hops["after"]["0"]["mean"] > hops["before"]["0"]["mean"] + 0.2
    assert (run / "hop_similarity.png").exists()
    # The loss curve, every step: numbers as CSV, and a PNG.
    rows = list(csv.DictReader((run / "loss_curve.csv").open()))
    assert len(rows) == hist[-1]["steps"] and rows[0].keys() >= {"step", "epoch", "lr", "loss"}
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The untrained model = the published embeddings, whose modalities are not aligned:
    zero = tmp_path / "zero"
    assert main(["eval", "slip", "--data", str(folder), "--frozen", "--out", str(zero)]) == 0
    z = _read(zero / "metrics.json")
    mean_mrr = (m["i2t"]["mrr"] + m["t2i"]["mrr"]) / 2
    assert mean_mrr > 2 * _random_mrr(12)
    assert mean_mrr > (z["i2t"]["mrr"] + z["t2i"]["mrr"]) / 2 + 0.3

    # ``acmmg eval --run`` reproduces the run's metrics from its best checkpoint
    again = tmp_path / "again"
    assert main(["eval", "--run", str(run), "--out", str(again)]) == 0
    assert _read(again / "metrics.json") == m

    # same inputs and parameters -> byte-identical metrics
    run2 = tmp_path / "slip2"
    assert _cli(*args, "--out", run2, "--no-progress") == 0
    assert (run2 / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()
    capsys.readouterr()


def test_slip_full_finetune_lowers_loss(folder, tmp_path):
    """End to end through open_clip (images from the tar, tokenised titles) with DLR groups."""
    cfg = TrainConfig(
        method="slip",
        data=str(folder),
        out=str(tmp_path / "full"),
        epochs=3,
        batch_size=16,
        lr=1e-3,
        grad_checkpointing=True,
        model="acmmg-tiny",
    )
    run = build_run(cfg)
    before = evaluate_loss(run)
    m = fit(run, progress=False)
    load_checkpoint(run, tmp_path / "full" / "checkpoints" / "last.pt")
    assert evaluate_loss(run) < before
    assert m["n_test"] == 12 and set(m["i2t"]) >= SLIP_KEYS
    assert (tmp_path / "full" / "metrics.json").exists()
    # zero-shot: the class names as prompts through the run's own text encoder
    zs = m["zero_shot"]
    assert zs["text_encoder"] == "the run's text encoder" and zs["random"] == 0.25
    assert 0 <= zs["image"]["accuracy"] <= 1 and zs["image"]["n"] == 12
    assert zs["prompt"].format("Red") == "a photo of Red, a type of product."


def test_rcml_frozen_lowers_loss_and_beats_random(folder, tmp_path):
    out = tmp_path / "rcml"
    cfg = TrainConfig(
        method="rcml",
        data=str(folder),
        out=str(out),
        frozen=True,
        epochs=4,
        batch_size=16,
        model="acmmg-tiny",
    )
    run = build_run(cfg)
    before = evaluate_loss(run)
    m = fit(run, progress=False)
    load_checkpoint(run, out / "checkpoints" / "last.pt")
    assert evaluate_loss(run) < before
    written = _read(out / "metrics.json")
    assert set(written["hit@5"]) == SIMS
    assert isinstance(written["relation_top3"], float)
    assert set(written["relation_top3_by_similarity"]) == SIMS
    assert written["n_relations"] == 5
    assert m["hit@5"]["AVG"] > m["random"]["hit@5"]
    assert m["relation_top3"] >= 0 and m["random"]["relation_top3"] == pytest.approx(0.6)


def test_rcml_full_cli_and_eval(folder, tmp_path, capsys):
    """RCML averages its metrics over --seeds runs (3 by default, as the paper)."""
    run = tmp_path / "rcml_full"
    args = ["train", "rcml", "--data", folder, "--epochs", 1, "--batch-size", 16]
    assert _cli(*args, "--max-steps", 1, "--seeds", 2, "--out", run, "--no-progress", *TINY) == 0
    m = _read(run / "metrics.json")
    assert m["seeds"] == [0, 1] and m["runs"] == ["seed-0", "seed-1"]
    one = [_read(run / f"seed-{s}" / "metrics.json") for s in (0, 1)]
    for name in SIMS:
        assert m["mean"]["hit@5"][name] == pytest.approx(
            (one[0]["hit@5"][name] + one[1]["hit@5"][name]) / 2, abs=1e-5
        )
        assert m["std"]["hit@5"][name] >= 0 and 0 <= m["mean"]["hit@5"][name] <= 1
    assert m["mean"]["n_relations"] == 5 and m["mean"]["method"] == "rcml"
    # the paper's other tasks and the CLIP baseline with the relation text appended
    assert 0 <= m["mean"]["relation_validity"]["accuracy"] <= 1
    base = one[0]["clip_relation_text"]
    assert set(base["hit@5"]) == SIMS and "relation_validity" in base
    assert base["model"] == "acmmg-tiny (random weights), untrained"
    # ``acmmg eval rcml --data DIR --out RUN_DIR`` evaluates the run found there
    (run / "metrics.json").unlink()
    assert main(["eval", "rcml", "--data", str(folder), "--out", str(run)]) == 0
    assert _read(run / "metrics.json") == m
    capsys.readouterr()


def test_user_errors(folder, tmp_path, capsys):
    assert _cli("train", "slip", "--data", tmp_path / "nope", "--frozen", "--out", tmp_path) == 2
    assert main(["eval", "--run", str(tmp_path)]) == 2
    assert main(["eval", "slip", "--data", str(folder)]) == 2  # untrained model needs --out
    norel = tmp_path / "norel"
    shutil.copytree(folder, norel)
    (norel / "relations.json").unlink()
    pl.read_parquet(norel / "edges.parquet").drop("relation_id").write_parquet(
        norel / "edges.parquet"
    )
    assert _cli("train", "rcml", "--data", norel, "--frozen", "--out", tmp_path / "r2") == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err and "config.json is missing" in err
    assert "RCML needs relations" in err


# ---------------------------------------------------------------- optimisation pieces


def test_layerwise_learning_rates(tmp_path, folder):
    cfg = TrainConfig(
        method="slip",
        data=str(folder),
        out=str(tmp_path),
        lr=1e-5,
        head_lr=4e-3,
        model="acmmg-tiny",
    )
    assert cfg.resolved().layer_decay == 0.8
    assert cfg.resolved().layer_decay_direction == "paper"  # SLIP's default
    run = build_run(cfg)
    names = [n[len("clip.") :] for n, _ in run.model.named_parameters() if n.startswith("clip.")]
    ids = layer_ids(names)
    assert ids["visual.conv1.weight"] == ("visual", 0, 2)
    assert ids["visual.transformer.resblocks.1.mlp.c_fc.weight"] == ("visual", 2, 2)
    assert ids["visual.proj"] == ("visual", 3, 2)
    assert ids["transformer.resblocks.0.attn.in_proj_weight"] == ("text", 1, 2)
    assert ids["text_projection"][1] == 3 and ids["logit_scale"][1] == 3
    params = dict(run.model.named_parameters())
    block0 = params["clip.visual.transformer.resblocks.0.mlp.c_fc.weight"]
    block1 = params["clip.visual.transformer.resblocks.1.mlp.c_fc.weight"]

    def rates(direction: str) -> dict[int, float]:
        groups = param_groups(run.model, 1e-5, 4e-3, 0.8, 0.01, direction)
        assert len({id(p) for g in groups for p in g["params"]}) == sum(
            1 for p in run.model.parameters() if p.requires_grad
        )
        return {id(p): g["lr"] for g in groups for p in g["params"]}

    # The paper's rule: the deepest block at the base rate, each shallower one x 1/0.8.
    paper = rates("paper")
    assert paper[id(block1)] == pytest.approx(1e-5)
    assert paper[id(block0)] == pytest.approx(1e-5 / 0.8)
    assert paper[id(params["clip.visual.conv1.weight"])] == pytest.approx(1e-5 / 0.8**2)
    assert paper[id(params["clip.visual.proj"])] == pytest.approx(1e-5)
    assert paper[id(params["head.gat_v.layers.0.lin.weight"])] == 4e-3
    # ViT-B/32 has 12 blocks: the last at 1e-5, each earlier one x 1.25, the first 1.16e-4.
    assert [layer_lr(1e-5, 0.8, b, 12, "paper") for b in (12, 11, 1)] == pytest.approx(
        [1e-5, 1.25e-5, 1e-5 * 1.25**11]
    )
    # The usual direction (--layer-decay-direction standard): lower layers learn slower.
    std = rates("standard")
    assert std[id(params["clip.visual.proj"])] == pytest.approx(1e-5)
    assert std[id(block1)] == pytest.approx(1e-5 * 0.8)
    assert std[id(params["clip.visual.conv1.weight"])] == pytest.approx(1e-5 * 0.8**3)

    # Every group's rate is in RUN/config.json, by name.
    fit(build_run(dataclasses.replace(cfg, epochs=1, batch_size=16, max_steps=1)), progress=False)
    written = _read(tmp_path / "config.json")
    lr_of = {(g["name"], g["weight_decay"]): g["lr"] for g in written["lr_groups"]}
    assert lr_of[("visual.blocks.1", 0.01)] == pytest.approx(1e-5)
    assert lr_of[("visual.blocks.0", 0.01)] == pytest.approx(1.25e-5)
    assert lr_of[("heads", 0.01)] == 4e-3
    assert sum(g["n_params"] for g in written["lr_groups"]) == sum(
        p.numel() for p in run.model.parameters() if p.requires_grad
    )
    assert written["schedule_used"]["warmup_steps"] == 0  # 1 step in all: 10% of it
    assert "only 1 steps" in written["schedule_used"]["warmup"]


def test_schedule_and_early_stopping():
    f = warmup_decay(total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == 0.0
    assert warmup_for(total_steps=5000, warmup_steps=500)[0] == 500  # SLIP's 500
    assert warmup_for(total_steps=400, warmup_steps=500)[0] == 40  # a short run: 10%
    c = warmup_decay(total_steps=110, warmup_steps=10, schedule="cosine")
    assert c(60) == pytest.approx(0.5) and c(110) == pytest.approx(0.0)
    stop = EarlyStopping(patience=2, min_delta=0.001)
    assert stop.step(0.5) and not stop.step(0.5005)  # within min delta: not an improvement
    assert not stop.should_stop and not stop.step(0.4) and stop.should_stop
    assert EarlyStopping(2, 0.001).step(np.float64(0.1))


def test_assembled_folder(tmp_path, monkeypatch, capsys):
    """Train on a folder written by the real assemble stage (our published layout)."""
    from pipeline.classes import ClassesParams, choose_classes
    from pipeline.publish.assemble import AssembleParams, assemble_category
    from tests.assemble_fixtures import make_work

    work = tmp_path / "work"
    make_work(work, n=60)
    choose_classes(work, ClassesParams(min_classes=2, min_items_per_class=5))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    folder = assemble_category(
        work, tmp_path / "pub" / "Electronics", AssembleParams(category="Electronics")
    )
    run = tmp_path / "run"
    assert (
        _cli(
            "train",
            "slip",
            "--data",
            folder,
            "--frozen",
            "--epochs",
            2,
            "--batch-size",
            32,
            "--out",
            run,
            "--no-progress",
        )
        == 0
    )
    assert _read(run / "metrics.json")["n_test"] == 18
    rcml = tmp_path / "rcml"
    assert main(["eval", "rcml", "--data", str(folder), "--out", str(rcml), *TINY]) == 0
    assert set(_read(rcml / "metrics.json")["hit@5"]) == SIMS
    capsys.readouterr()


def test_default_model_is_the_papers_and_offline_says_how(folder, tmp_path, monkeypatch, capsys):
    """Without --model both methods fine-tune ViT-B-32 from OpenAI's weights; offline, that is
    one clear line naming --checkpoint."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for method in ("slip", "rcml"):
        cfg = TrainConfig(method=method, data=str(folder), out=str(tmp_path / method))
        with pytest.raises(UserError, match="ViT-B-32 weights 'openai'.*--checkpoint PATH"):
            build_run(cfg)
    out = tmp_path / "cli"
    assert _cli("train", "slip", "--data", folder, "--out", out, "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--checkpoint PATH" in err and "offline" in err


def test_frozen_inputs_are_centred_on_the_train_mean(folder, tmp_path):
    import torch
    import torch.nn.functional as F

    cfg = TrainConfig(method="slip", data=str(folder), out=str(tmp_path), frozen=True)
    run = build_run(cfg)
    train = torch.as_tensor(run.data.nodes("train"))
    batch = {"image_emb": run.emb_image[:5], "text_emb": run.emb_text[:5]}
    e_v, e_t = run.model.encode(batch)
    want_v = F.normalize(run.emb_image[:5] - run.emb_image[train].mean(0), dim=-1)
    assert torch.allclose(e_v, want_v, atol=1e-6)
    assert torch.allclose(e_t, F.normalize(run.emb_text[:5] - run.emb_text[train].mean(0), dim=-1))
    # --no-frozen-center: the untrained model is the published embeddings themselves
    plain = build_run(dataclasses.replace(cfg, frozen_center=False))
    assert torch.allclose(plain.model.encode(batch)[0], run.emb_image[:5], atol=1e-6)


def test_frozen_zero_shot_uses_the_model_that_made_the_embeddings(folder, tmp_path):
    """SLIP --frozen embeds the prompts with the folder's model (manifest), after checking
    that it reproduces the folder's title embeddings."""
    import torch

    from pipeline.clip import load_model
    from pipeline.training.data import load_category
    from pipeline.training.evaluate import evaluate

    mine = tmp_path / "made-by-tiny"
    shutil.copytree(folder, mine)
    (mine / "manifest.json").write_text(json.dumps({"params": {"model": "acmmg-tiny"}}))
    cfg = TrainConfig(method="slip", data=str(mine), out=str(tmp_path / "o"), frozen=True)
    run = build_run(cfg)
    assert run.cfg.model == "acmmg-tiny" and run.cfg.pretrained is None
    m = evaluate(run)
    assert "does not reproduce the folder's title embeddings" in m["zero_shot"]["skipped"]

    cm = load_model("acmmg-tiny", None, device="cpu", seed=0)
    with torch.no_grad():
        titles = cm.model.encode_text(cm.tokenizer(load_category(mine).titles))
    torch.save(torch.nn.functional.normalize(titles, dim=-1), mine / "embeddings/title_embeds.pt")
    m = evaluate(build_run(cfg))
    assert m["zero_shot"]["text_encoder"] == "acmmg-tiny (random)"
    assert 0 <= m["zero_shot"]["fused"]["accuracy"] <= 1


def test_bad_settings_are_one_line_errors(folder, tmp_path, capsys):
    base = ["train", "slip", "--data", folder, "--frozen", "--out", tmp_path / "x"]
    assert _cli(*base, "--prompt", "a photo of {name}") == 2
    assert _cli(*base, "--shots", 0) == 2
    assert _cli(*base, "--seeds", 0) == 2
    err = capsys.readouterr().err
    assert "--prompt must hold one {}" in err and "--shots" in err and "seeds must be" in err
    assert "Traceback" not in err
