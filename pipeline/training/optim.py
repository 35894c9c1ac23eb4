"""Optimiser pieces: layer-wise learning-rate groups, the warmup-then-decay schedule, early
stopping.

SLIP section 6.1: AdamW with discriminative layer-wise learning rates (the top transformer
block of each tower at the base rate, every block below it x decay), the graph / head
components at their own higher rate, linear warmup then decay to zero, early stopping on the
validation score (patience, min delta).
"""

from __future__ import annotations

import math
import re

from torch import nn

_BLOCK = re.compile(r"\.(?:resblocks|layers|blocks|layer)\.(\d+)\.")
_EMBED = (
    "token_embedding",
    "positional_embedding",
    "class_embedding",
    "conv1",
    "ln_pre",
    "patch_embed",
    "embeddings.",
)


def layer_ids(names: list[str]) -> dict[str, tuple[str, int, int]]:
    """Parameter name (within the CLIP model) -> (tower, layer id, tower depth).

    Layer 0 is the embedding, 1..L the transformer blocks, L + 1 the final norm and projection
    (and logit_scale). Parameters under ``visual.`` form the image tower, the rest the text.
    """
    depth: dict[str, int] = {"visual": 0, "text": 0}
    for n in names:
        m = _BLOCK.search(n)
        if m:
            tower = "visual" if n.startswith("visual.") else "text"
            depth[tower] = max(depth[tower], int(m.group(1)) + 1)
    out = {}
    for n in names:
        tower = "visual" if n.startswith("visual.") else "text"
        m = _BLOCK.search(n)
        if m:
            lid = int(m.group(1)) + 1
        elif any(k in n for k in _EMBED):
            lid = 0
        else:
            lid = depth[tower] + 1
        out[n] = (tower, lid, depth[tower])
    return out


def _no_decay(name: str, p: nn.Parameter) -> bool:
    return p.ndim < 2 or "embedding" in name or "logit_scale" in name


DIRECTIONS = ("paper", "standard")


def layer_lr(lr: float, decay: float, layer: int, depth: int, direction: str) -> float:
    """Learning rate of layer ``layer`` (0 embedding, 1..depth blocks, depth + 1 final norm
    and projection) of a tower with ``depth`` blocks.

    ``paper`` (SLIP 6.1: "deeper layers use the base rate ... increasing rates for shallower
    layers by a factor of 0.8"): the last block, and the norm / projection above it, at ``lr``;
    each block below it x (1 / decay), the embedding one step more. ``standard``
    (discriminative fine-tuning as in ULMFiT / BEiT): the projection at ``lr``, each layer
    below it x decay.
    """
    if direction == "paper":
        return lr * (1.0 / decay) ** (depth - min(layer, depth))
    if direction == "standard":
        return lr * decay ** (depth + 1 - layer)
    raise ValueError(f"layer decay direction must be one of {DIRECTIONS}, got {direction!r}")


def _layer_name(tower: str, layer: int, depth: int) -> str:
    if layer == 0:
        return f"{tower}.embedding"
    if layer > depth:
        return f"{tower}.head"
    return f"{tower}.blocks.{layer - 1}"


def param_groups(
    model: nn.Module,
    lr: float,
    head_lr: float,
    layer_decay: float,
    weight_decay: float,
    direction: str = "standard",
) -> list[dict]:
    """AdamW groups, one per (layer, weight decay): CLIP layers at ``layer_lr``, everything
    else (graph heads, attention module, frozen-mode adapters) at ``head_lr``. Each group has a
    ``name`` (``visual.blocks.3``, ``text.embedding``, ``heads`` ...)."""
    groups: dict[tuple[str, float], dict] = {}

    def add(name: str, g_lr: float, wd: float, p: nn.Parameter) -> None:
        g = groups.setdefault((name, wd), {"name": name, "lr": g_lr, "weight_decay": wd})
        g.setdefault("params", []).append(p)

    clip_named = [
        (n[len("clip.") :], p)
        for n, p in model.named_parameters()
        if n.startswith("clip.") and p.requires_grad
    ]
    ids = layer_ids([n for n, _ in clip_named])
    for n, p in clip_named:
        tower, lid, depth = ids[n]
        g_lr = layer_lr(lr, layer_decay, lid, depth, direction)
        add(_layer_name(tower, lid, depth), g_lr, 0.0 if _no_decay(n, p) else weight_decay, p)
    for n, p in model.named_parameters():
        if not n.startswith("clip.") and p.requires_grad:
            add("heads", head_lr, 0.0 if _no_decay(n, p) else weight_decay, p)
    return sorted(groups.values(), key=lambda g: (g["lr"], g["weight_decay"], g["name"]))


def describe_groups(groups: list[dict]) -> list[dict]:
    """The groups as plain values for RUN/config.json: name, lr, weight decay, parameters."""
    return [
        {
            "name": g["name"],
            "lr": float(f"{g['lr']:.6g}"),  # 1.25e-05, not 1.2500000000000002e-05
            "weight_decay": g["weight_decay"],
            "n_params": int(sum(p.numel() for p in g["params"])),
        }
        for g in groups
    ]


def warmup_for(total_steps: int, warmup_steps: int) -> tuple[int, str]:
    """(warmup steps used, why). SLIP warms up over 500 steps; a run with fewer steps than
    that in all would never leave warmup, so it warms up over a tenth of its steps."""
    if total_steps > warmup_steps:
        return warmup_steps, f"{warmup_steps} steps as configured (SLIP: 500)"
    used = total_steps // 10
    return used, (
        f"the run has only {total_steps} steps, not more than the {warmup_steps} warmup steps "
        f"asked for: warmed up over {used} (10% of the run)"
    )


def warmup_decay(total_steps: int, warmup_steps: int, schedule: str = "linear"):
    """LR multiplier: linear 0 -> 1 over warmup, then linear (or cosine) decay to 0 at the end."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        rest = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / rest)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


class EarlyStopping:
    """Stop when the monitored score (higher is better) has not improved by more than
    ``min_delta`` for ``patience`` consecutive checks."""

    def __init__(self, patience: int = 10, min_delta: float = 0.001):
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.bad = 0

    def step(self, score: float) -> bool:
        """Record a score; True when it is a new best."""
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.bad = score, 0
            return True
        self.bad += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad >= self.patience
