"""Relation texts: one sentence per user cluster, in the style of RCML appendix A.2.

A cluster is described by its centroid (the mean share of each class in its users'
purchases): classes fall into tiers (dominant / secondary / moderate / low / minimal) by their
share relative to the top share, moved one tier up or down when the cluster buys them at least
twice / at most half as much as the average user. The dominant class is always named first;
at most 12 classes are named, the rest counted.
"""

from __future__ import annotations

import numpy as np

INTRA_TEXT = "These two items represent the same product. Align their features accordingly."

TIERS = ("dominant", "secondary", "moderate", "low", "minimal")
# Base tier from a class's share relative to the centroid's top share.
_R_DOMINANT = 0.75
_R_SECONDARY = 0.35
_R_MODERATE = 0.12
_R_LOW = 0.03
# Population adjustment: a class bought at least this many times more than by the average
# user moves one tier up (never into dominant, never out of minimal); one bought at most
# this fraction of the average moves one tier down.
_LIFT_UP = 2.0
_LIFT_DOWN = 0.5


def relation_tiers(centroid: np.ndarray, population_mean: np.ndarray) -> list[int]:
    """Tier index (0 = dominant ... 4 = minimal, see ``TIERS``) of every class.

    The top class (lowest index on ties) is always dominant; others are placed by their share
    relative to the top share, then moved one tier by their lift over the population mean.
    """
    s = np.asarray(centroid, dtype=np.float64)
    m = np.asarray(population_mean, dtype=np.float64)
    if s.ndim != 1 or s.shape != m.shape or s.size == 0:
        raise ValueError("centroid and population_mean must be 1-d arrays of the same length")
    if not np.all(np.isfinite(s)) or s.max() <= 0:
        raise ValueError("centroid must have a positive share somewhere")
    top = int(np.argmax(s))
    r = s / s[top]
    tiers = []
    for j in range(s.size):
        if j == top or r[j] >= _R_DOMINANT:
            tiers.append(0)
            continue
        if s[j] <= 0:
            tiers.append(4)
            continue
        if r[j] >= _R_SECONDARY:
            t = 1
        elif r[j] >= _R_MODERATE:
            t = 2
        elif r[j] >= _R_LOW:
            t = 3
        else:
            t = 4
        lift = s[j] / m[j] if m[j] > 0 else np.inf
        if lift >= _LIFT_UP and 2 <= t <= 3:
            t -= 1
        elif lift <= _LIFT_DOWN and t <= 3:
            t += 1
        tiers.append(t)
    return tiers


def _join(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def _percent(share: float) -> str:
    pct = round(100 * share)
    return "<1%" if pct < 1 else f"{pct}%"


def relation_text(
    centroid: np.ndarray,
    population_mean: np.ndarray,
    class_names: list[str],
    *,
    detail: bool = False,
    max_names: int = 12,
) -> str:
    """Describe one cluster centroid (class shares) in the style of RCML appendix A.2.

    Classes are ranked by share and grouped into tiers (``relation_tiers``); the dominant
    class comes first. ``detail`` adds percentages to the dominant, secondary and moderate
    classes (used to tell apart clusters whose plain texts coincide). At most ``max_names``
    classes are named (dominant ones always; then tier by tier) and the rest are counted
    ("and 4 other categories"): with the paper's ~10 classes every class is named, and
    categories with many classes still fit a CLIP text encoder's 77 tokens.
    """
    s = np.asarray(centroid, dtype=np.float64)
    if len(class_names) != s.size:
        raise ValueError(f"{len(class_names)} class names for {s.size} shares")
    tiers = relation_tiers(s, population_mean)
    m = np.asarray(population_mean, dtype=np.float64)
    # Within a tier: larger share first, then class order (stable, deterministic).
    order = sorted(range(s.size), key=lambda j: (-s[j], j))
    groups: list[list[int]] = [[j for j in order if tiers[j] == t] for t in range(len(TIERS))]

    budget = max(max_names - len(groups[0]), 0)
    shown_in: list[list[int]] = [groups[0]]
    for idx in groups[1:]:
        shown_in.append(idx[:budget])
        budget -= len(shown_in[-1])

    def names(t: int) -> list[str]:
        idx, shown = groups[t], shown_in[t]
        out = [
            f"{class_names[j]} ({_percent(s[j])})" if detail and t <= 2 else class_names[j]
            for j in shown
        ]
        rest = len(idx) - len(shown)
        if rest:
            out.append(f"{rest} other {'category' if rest == 1 else 'categories'}")
        return out

    top = groups[0][0]
    lift_top = s[top] / m[top] if m[top] > 0 else np.inf
    if len(groups[0]) > 1:
        verb = "primarily buy"
    elif s[top] >= 0.6:
        verb = "overwhelmingly buy"
    elif lift_top >= 3:
        verb = "show a striking preference for"
    elif s[top] >= 0.4:
        verb = "heavily favor"
    else:
        verb = "primarily buy"
    parts = [f"Co-purchased by people who {verb} {_join(names(0))}"]
    if groups[1]:
        parts.append(f"followed by {_join(names(1))}")
    if groups[2]:
        parts.append(f"with moderate interest in {_join(names(2))}")
    tail = []
    if groups[3]:
        tail.append(f"lower engagement in {_join(names(3))}")
    if groups[4]:
        tail.append(f"minimal interest in {_join(names(4))}")
    if tail:
        parts.append("while showing " + ", and ".join(tail))
    return ", ".join(parts) + "."
