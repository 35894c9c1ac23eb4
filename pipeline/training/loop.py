"""Training: ``train`` builds a run and ``fit`` trains it, keeping the best checkpoint by
validation score, then writes the test metrics of that checkpoint.

A run directory holds:
    config.json            the full configuration (method defaults resolved), every
                           parameter group's learning rate, the schedule used
    checkpoints/last.pt    model state after the latest epoch
    checkpoints/best.pt    model state with the best validation score
    history.json           per-epoch train losses, validation score, learning rates
    loss_curve.csv / .png  the training loss (and its parts) at every step
    metrics.json           test metrics of the best checkpoint (written atomically)
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from pipeline.errors import UserError
from pipeline.io import write_json
from pipeline.training.batches import batches
from pipeline.training.checkpoint import load_checkpoint, save_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.training.data import SubgraphBatchSampler
from pipeline.training.evaluate import before_training, evaluate, val_score
from pipeline.training.optim import (
    EarlyStopping,
    describe_groups,
    param_groups,
    warmup_decay,
    warmup_for,
)
from pipeline.training.plots import plot_loss_curve
from pipeline.training.report import rounded, write_average, write_csv
from pipeline.training.run import Run, build_run
from pipeline.training.steps import rcml_step, slip_step

log = logging.getLogger(__name__)


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train, keep the best checkpoint by validation score, write test metrics. Returns them.

    With ``seeds`` > 1, one run per seed in OUT/seed-<s>/ and their average in
    OUT/metrics.json (RCML A.1: "averaged over three runs with different random seeds")."""
    cfg = cfg.resolved()
    if cfg.seeds == 1:
        return fit(build_run(cfg), progress=progress)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.as_dict())
    results = {}
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    for seed in seeds:
        sub = dataclasses.replace(cfg, seed=seed, seeds=1, out=str(out / f"seed-{seed}"))
        log.info("seed %d of %s", seed, seeds)
        results[seed] = fit(build_run(sub), progress=progress)
    return write_average(out, results)


def _check_trainable(run: Run) -> None:
    data = run.data
    n_train = len(data.nodes("train"))
    if n_train < 2:
        raise UserError(f"the train split has {n_train} nodes: nothing to train on")
    if run.cfg.method == "rcml":  # fail now rather than after training
        test_edges = data.edges_within(data.nodes("test"))
        if not (data.relation_id[test_edges] >= 0).any():
            raise UserError("the test split has no edge with a relation: RCML cannot be evaluated")


def _optimiser(run: Run, total: int, warmup: int):
    cfg = run.cfg
    groups = param_groups(
        run.model, cfg.lr, cfg.head_lr, cfg.layer_decay, cfg.weight_decay, cfg.layer_decay_direction
    )
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(total, warmup, cfg.schedule))
    return groups, opt, sched


def _train_epoch(run: Run, batches_, opt, sched, epoch: int, first_step: int, last_step: int):
    """One epoch of optimiser steps (at most up to ``last_step``); a row per step."""
    cfg = run.cfg
    step_fn = slip_step if cfg.method == "slip" else rcml_step
    rows = []
    for batch in batches_:
        loss, parts = step_fn(run, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        lr = max(g["lr"] for g in opt.param_groups)
        opt.step()
        sched.step()
        rows.append(
            {"step": first_step + len(rows) + 1, "epoch": epoch, "lr": lr}
            | {"loss": float(loss.detach()), **parts}
        )
        if first_step + len(rows) >= last_step:
            break
    return rows


def fit(run: Run, progress: bool = True) -> dict:
    """Train a built run (see ``train``); the model ends with the best checkpoint loaded."""
    cfg, data = run.cfg, run.data
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_trainable(run)
    train_nodes = data.nodes("train")
    sampler = SubgraphBatchSampler(data.adjacency(), train_nodes, cfg.batch_size, seed=cfg.seed)
    steps_per_epoch = len(sampler)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warmup, why = warmup_for(total, cfg.warmup_steps)
    if warmup != cfg.warmup_steps:
        log.info("warmup: %s", why)
    groups, opt, sched = _optimiser(run, total, warmup)
    schedule = {
        "total_steps": total,
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps": warmup,
        "warmup": why,
        "decay": cfg.schedule,
    }
    write_json(
        out / "config.json",
        {**cfg.as_dict(), "lr_groups": describe_groups(groups), "schedule_used": schedule},
    )
    before = before_training(run)
    stopper = EarlyStopping(cfg.patience, cfg.min_delta)
    ckpt_dir = out / "checkpoints"
    history: list[dict] = []
    curve: list[dict] = []
    log.info(
        "training %s on %s: %d train nodes, %d steps/epoch, device %s, split from %s",
        cfg.method,
        data.root,
        len(train_nodes),
        steps_per_epoch,
        run.device,
        data.split_source,
    )
    for epoch in range(1, cfg.epochs + 1):
        sampler.set_epoch(epoch - 1)
        run.model.train()
        bar = tqdm(
            batches(run, sampler, train=True),
            total=steps_per_epoch,
            desc=f"{cfg.method} epoch {epoch}/{cfg.epochs}",
            unit="batch",
            disable=not progress,
            dynamic_ncols=True,
        )
        rows = _train_epoch(run, bar, opt, sched, epoch, len(curve), total)
        bar.close()
        curve += rows
        parts = list(dict.fromkeys(k for r in rows for k in r if k not in ("step", "epoch", "lr")))
        # a part missing from a batch (RCML's intra-modal terms without edges) counts 0
        train_losses = {k: sum(r.get(k, 0.0) for r in rows) / max(len(rows), 1) for k in parts}
        score = val_score(run)
        monitored = score if score is not None else -train_losses.get("loss", 0.0)
        improved = stopper.step(monitored)
        history.append(
            {
                "epoch": epoch,
                "steps": len(curve),
                "train": train_losses,
                "val_score": score,
                "lr_max": max(g["lr"] for g in opt.param_groups),
            }
        )
        log.info(
            "epoch %d: train loss %.4f, val score %s%s",
            epoch,
            train_losses.get("loss", float("nan")),
            "n/a" if score is None else f"{score:.4f}",
            " (best)" if improved else "",
        )
        save_checkpoint(ckpt_dir / "last.pt", run, epoch, score)
        if improved:
            save_checkpoint(ckpt_dir / "best.pt", run, epoch, score)
        write_json(out / "history.json", rounded(history))
        write_csv(out / "loss_curve.csv", rounded(curve))
        if stopper.should_stop:
            log.info(
                "early stopping after epoch %d (no improvement for %d epochs)", epoch, cfg.patience
            )
            break
        if len(curve) >= total:
            break
    plot_loss_curve(rounded(curve), rounded(history), out / "loss_curve.png")
    best = load_checkpoint(run, ckpt_dir / "best.pt")
    result = evaluate(run, "test", before, out)
    result["best_epoch"] = best["epoch"]
    result = rounded(result)
    write_json(out / "metrics.json", result)
    return result
