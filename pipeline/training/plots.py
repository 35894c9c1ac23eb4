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
    ax.legend(loc="best", fontsize=8)
    ax.set_title("training loss per step")
    _save(fig, path)


def plot_hop_similarity(values: dict[str, dict], path: Path) -> None:
    """SLIP Fig. 5: distributions of cross-modal cosine by hop distance, one panel per model
    (before / after training)."""
    import numpy as np

    panels = list(values)  # "before" and "after" training, or one "model"
    fig = _figure(6.4 if len(panels) == 1 else 11.0, 4.0)
    bins = np.linspace(-1.0, 1.0, 81)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for kind, cos in values[panel].items():
            label = "random pairs" if kind == "random" else f"{kind}-hop"
            ax.hist(cos, bins=bins, density=True, histtype="step", lw=1.5, label=label)
        ax.set_title("image-text cosine by hop" if panel == "model" else f"{panel} training")
        ax.set_xlabel("cosine(image of i, text of j)")
    axes[0].set_ylabel("density")
    axes[-1].legend(fontsize=8)
    _save(fig, path)
