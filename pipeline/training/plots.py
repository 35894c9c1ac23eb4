"""Plots of a run folder (matplotlib's object API, no global state; PNG bytes carry no
matplotlib version stamp, so the same numbers give the same file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.io import atomic_path


def _figure(w: float = 6.4, h: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="tight")


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def plot_loss_curve(curve: list[dict], history: list[dict], path: Path) -> None:
    """Training loss (and its parts) per step; the validation score per epoch on the right."""
    fig = _figure()
    ax = fig.add_subplot()
    steps = [r["step"] for r in curve]
    parts = list(dict.fromkeys(k for r in curve for k in r if k not in ("step", "epoch", "lr")))
    for k in parts:
        ax.plot(steps, [r.get(k) for r in curve], label=k, lw=2 if k == "loss" else 1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    scored = [h for h in history if h.get("val_score") is not None]
    if scored:
        ax2 = ax.twinx()
        ax2.plot([h["steps"] for h in scored], [h["val_score"] for h in scored], "ko--", ms=4)
        ax2.set_ylabel("validation score (o)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("training loss per step")
    _save(fig, path)
