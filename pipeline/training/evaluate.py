"""Evaluation of a built run: SLIP cross-modal retrieval (Table 2), RCML relation-guided
retrieval (Hit@5) and relation-type prediction (top-3), the early-stopping score, the mean
loss of a split, and ``evaluate_run`` behind ``acmmg eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.io import write_json
from pipeline.training.batches import batches
from pipeline.training.checkpoint import load_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.training.data import SubgraphBatchSampler
from pipeline.training.plots import plot_hop_similarity
from pipeline.training.rcml_eval import clip_baseline, evaluate_rcml, rcml_retrieval
from pipeline.training.report import rounded, write_average
from pipeline.training.run import Run, build_run
from pipeline.training.slip_eval import evaluate_slip, slip_before, slip_test_metrics
from pipeline.training.steps import rcml_step, slip_step


def before_training(run: Run, split: str = "test") -> dict:
    """What the papers compare before and after training, measured on the model as it is
    now: SLIP's Fig. 5 hop similarities; RCML's CLIP baseline (relation text appended)."""
    if run.cfg.method == "slip":
        return {"hops": slip_before(run, split)}
    return {"clip": clip_baseline(run, split)}


def evaluate(
    run: Run, split: str = "test", before: dict | None = None, out_dir: Path | None = None
) -> dict:
    """Test metrics of the run's model (``before``: from ``before_training``); with
    ``out_dir``, the plots go there too."""
    before = before or {}
    if run.cfg.method == "slip":
        out, hop_values = slip_test_metrics(run, split, before.get("hops"))
        if out_dir is not None:
            plot_hop_similarity(hop_values, Path(out_dir) / "hop_similarity.png")
    else:
        out = evaluate_rcml(run, split, before.get("clip"))
    return {"method": run.cfg.method, "split": split, **out}


def val_score(run: Run) -> float | None:
    """Early-stopping score (higher is better): SLIP mean val MRR, RCML val Hit@5 (AVG)."""
    try:
        if run.cfg.method == "slip":
            if len(run.data.nodes("val")) < 2:
                return None
            m = evaluate_slip(run, "val")
            return (m["i2t"]["mrr"] + m["t2i"]["mrr"]) / 2
        m = rcml_retrieval(run, "val", max_queries=min(500, run.cfg.max_eval_queries))
        return m["hit@5"]["AVG"]
    except UserError:
        return None


@torch.no_grad()
def evaluate_loss(run: Run, split: str = "train") -> float:
    """Mean training objective over a split's subgraph batches, in eval mode (no dropout,
    fixed batches): comparable before and after training."""
    run.model.eval()
    sampler = SubgraphBatchSampler(
        run.data.adjacency(), run.data.nodes(split), run.cfg.batch_size, seed=run.cfg.seed
    )
    step_fn = slip_step if run.cfg.method == "slip" else rcml_step
    losses = [float(step_fn(run, batch)[0]) for batch in batches(run, sampler, train=False)]
    if not losses:
        raise UserError(f"the {split} split has no batch to score")
    return float(np.mean(losses))


def evaluate_run(
    run_dir: str | Path | None = None,
    data: str | Path | None = None,
    method: str | None = None,
    out: str | Path | None = None,
    split: str = "test",
    overrides: dict | None = None,
) -> dict:
    """Evaluate a run's best checkpoint, or (no run) the untrained model: for SLIP --frozen the
    published embeddings themselves, the zero-shot CLIP baseline. Writes OUT/metrics.json."""
    cfg_dict: dict[str, Any] = {}
    ckpt = None
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").exists():
            raise UserError(f"{run_dir}/config.json is missing: not a training run directory")
        cfg_dict = json.loads((run_dir / "config.json").read_text())
        if (cfg_dict.get("seeds") or 1) > 1:
            return _evaluate_seeds(run_dir, cfg_dict, data, method, out, split, overrides)
        ckpt = run_dir / "checkpoints" / "best.pt"
        if not ckpt.exists():
            raise UserError(f"{ckpt} is missing: the run has no checkpoint yet")
        if method and method != cfg_dict.get("method"):
            raise UserError(f"{run_dir} is a {cfg_dict.get('method')} run, not {method}")
    cfg_dict.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if method:
        cfg_dict["method"] = method
    if data is not None:
        cfg_dict["data"] = str(data)
    if "method" not in cfg_dict or "data" not in cfg_dict:
        raise UserError("give --run RUN_DIR, or a method and --data DIR")
    out_dir = Path(out) if out is not None else run_dir
    if out_dir is None:
        raise UserError("give --out DIR for the metrics of an untrained model")
    cfg_dict["out"] = str(out_dir)
    run = build_run(TrainConfig.from_dict(cfg_dict))
    result = {}
    before = None
    if ckpt is not None:
        before = before_training(run, split)  # the untrained model, as fit measured it
        result["best_epoch"] = load_checkpoint(run, ckpt)["epoch"]
    result = rounded({**evaluate(run, split, before, out_dir), **result})
    write_json(Path(out_dir) / "metrics.json", result)
    return result


def _evaluate_seeds(run_dir: Path, cfg_dict: dict, data, method, out, split, overrides) -> dict:
    """``evaluate_run`` of a several-seed run: each seed's run, then their average."""
    seed0 = int(cfg_dict.get("seed", 0))
    results = {}
    for seed in range(seed0, seed0 + int(cfg_dict["seeds"])):
        sub = f"seed-{seed}"
        sub_out = Path(out) / sub if out is not None else None
        results[seed] = evaluate_run(run_dir / sub, data, method, sub_out, split, overrides)
    return write_average(Path(out) if out is not None else run_dir, results)
