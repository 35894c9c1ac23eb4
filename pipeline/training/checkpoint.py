"""Run checkpoints: the model's state with the epoch and validation score it was saved at."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.io import atomic_path
from pipeline.training.run import Run


def save_checkpoint(path: Path, run: Run, epoch: int, score: float | None) -> None:
    state = {
        "config": run.cfg.as_dict(),
        "epoch": epoch,
        "score": score,
        "model": run.model.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(run: Run, path: Path) -> dict:
    state = torch.load(path, map_location=run.device, weights_only=False)
    run.model.load_state_dict(state["model"])
    return state
