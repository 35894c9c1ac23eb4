"""Training: ``train`` builds a run and ``fit`` trains it, keeping the best checkpoint by
validation score, then writes the test metrics of that checkpoint.

A run directory holds:
    config.json            the full configuration (method defaults resolved)
    checkpoints/last.pt    model state after the latest epoch
    checkpoints/best.pt    model state with the best validation score
    history.json           per-epoch train losses, validation score, learning rates
    metrics.json           test metrics of the best checkpoint (written atomically)
"""

from __future__ import annotations

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
from pipeline.training.evaluate import evaluate, rounded, val_score
from pipeline.training.optim import (
    EarlyStopping,
    describe_groups,
    param_groups,
    warmup_decay,
    warmup_for,
)
from pipeline.training.run import Run, build_run
from pipeline.training.steps import rcml_step, slip_step

log = logging.getLogger(__name__)


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train, keep the best checkpoint by validation score, write test metrics. Returns them."""
    return fit(build_run(cfg), progress=progress)


def fit(run: Run, progress: bool = True) -> dict:
    """Train a built run (see ``train``); the model ends with the best checkpoint loaded."""
    cfg = run.cfg
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = run.data
    train_nodes = data.nodes("train")
    if len(train_nodes) < 2:
        raise UserError(f"the train split has {len(train_nodes)} nodes: nothing to train on")
    if cfg.method == "rcml":  # fail now rather than after training
        test_edges = data.edges_within(data.nodes("test"))
        if not (data.relation_id[test_edges] >= 0).any():
            raise UserError("the test split has no edge with a relation: RCML cannot be evaluated")
    sampler = SubgraphBatchSampler(data.adjacency(), train_nodes, cfg.batch_size, seed=cfg.seed)
    steps_per_epoch = len(sampler)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warmup, why = warmup_for(total, cfg.warmup_steps)
    if warmup != cfg.warmup_steps:
        log.info("warmup: %s", why)
    groups = param_groups(
        run.model,
        cfg.lr,
        cfg.head_lr,
        cfg.layer_decay,
        cfg.weight_decay,
        cfg.layer_decay_direction,
    )
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
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(total, warmup, cfg.schedule))
    step_fn = slip_step if cfg.method == "slip" else rcml_step
    stopper = EarlyStopping(cfg.patience, cfg.min_delta)
    ckpt_dir = out / "checkpoints"
    history: list[dict] = []
    step = 0
    log.info(
        "training %s on %s: %d train nodes, %d steps/epoch, device %s, split from %s",
        cfg.method,
        data.root,
        len(train_nodes),
        steps_per_epoch,
        run.device,
        data.split_source,
    )
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        run.model.train()
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not progress,
            dynamic_ncols=True,
        )
        for batch in batches(run, sampler, train=True):
            loss, parts = step_fn(run, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            seen += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if step >= total:
                break
        bar.close()
        train_losses = {k: v / max(seen, 1) for k, v in sums.items()}
        score = val_score(run)
        monitored = score if score is not None else -train_losses.get("loss", 0.0)
        improved = stopper.step(monitored)
        history.append(
            {
                "epoch": epoch + 1,
                "steps": step,
                "train": train_losses,
                "val_score": score,
                "lr_max": max(g["lr"] for g in opt.param_groups),
            }
        )
        log.info(
            "epoch %d: train loss %.4f, val score %s%s",
            epoch + 1,
            train_losses.get("loss", float("nan")),
            "n/a" if score is None else f"{score:.4f}",
            " (best)" if improved else "",
        )
        save_checkpoint(ckpt_dir / "last.pt", run, epoch + 1, score)
        if improved:
            save_checkpoint(ckpt_dir / "best.pt", run, epoch + 1, score)
        write_json(out / "history.json", rounded(history))
        if stopper.should_stop:
            log.info(
                "early stopping after epoch %d (no improvement for %d epochs)",
                epoch + 1,
                cfg.patience,
            )
            break
        if step >= total:
            break
    best = load_checkpoint(run, ckpt_dir / "best.pt")
    result = evaluate(run, "test")
    result["best_epoch"] = best["epoch"]
    result = rounded(result)
    write_json(out / "metrics.json", result)
    return result
