"""Run checkpoints: the model's state with the epoch and validation score it was saved at.

A checkpoint holds only tensors and plain values (the config as a dict of str / number /
bool / None), so it loads with ``torch.load(weights_only=True)``: a run folder from someone
else cannot make ``acmmg eval --run`` execute code, and a checkpoint that needs more than
that is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from pipeline.errors import UserError
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


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """The checkpoint's dict, unpickled with tensors and plain values only."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message suggests weights_only=False; relay only what the file asked for.
        what = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        raise UserError(
            f"{path}: refused to load, it holds objects other than tensors and plain values "
            "(loading it could run code)" + (f": {what[0]}" if what else "")
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise UserError(f"{path}: not a checkpoint of this training module (no model state)")
    return state


def load_checkpoint(run: Run, path: Path) -> dict:
    """Load a checkpoint's model state into ``run.model``; returns the checkpoint's dict."""
    state = read_checkpoint(path, run.device)
    try:
        run.model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{path}: does not fit this run's model: {first}") from None
    return state
