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


def param_groups(
    model: nn.Module, lr: float, head_lr: float, layer_decay: float, weight_decay: float
) -> list[dict]:
    """AdamW groups: CLIP parameters at lr * decay^(depth + 1 - layer), heads at head_lr."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    clip_named = [
        (n[len("clip.") :], p)
        for n, p in model.named_parameters()
        if n.startswith("clip.") and p.requires_grad
    ]
    ids = layer_ids([n for n, _ in clip_named])
    for n, p in clip_named:
        _, lid, depth = ids[n]
        g_lr = lr * layer_decay ** (depth + 1 - lid)
        groups.setdefault((g_lr, 0.0 if _no_decay(n, p) else weight_decay), []).append(p)
    for n, p in model.named_parameters():
        if not n.startswith("clip.") and p.requires_grad:
            groups.setdefault((head_lr, 0.0 if _no_decay(n, p) else weight_decay), []).append(p)
    return [
        {"params": ps, "lr": g_lr, "weight_decay": wd}
        for (g_lr, wd), ps in sorted(groups.items(), key=lambda kv: kv[0])
    ]


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
