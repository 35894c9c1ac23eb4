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


# The sentence's phrase for each tier after the lead ("people who <verb> ...").
_PHRASES = (
    "",
    "followed by",
    "with moderate interest in",
    "lower engagement in",
    "minimal interest in",
)
# How much of a cluster's buying lies outside the vocabulary: (least share, word).
_OUTSIDE = ((0.5, "Most"), (0.2, "Many"), (0.05, "Some"))


def relation_text(
    centroid: np.ndarray,
    population_mean: np.ndarray,
    class_names: list[str],
    *,
    detail: bool = False,
    max_names: int = 12,
    outside: int | None = None,
) -> str:
    """Describe one cluster centroid (class shares) in the style of RCML appendix A.2.

    Classes are ranked by share and grouped into tiers (``relation_tiers``); the dominant
    class comes first. ``detail`` adds percentages to the dominant, secondary and moderate
    classes (used to tell apart clusters whose plain texts coincide). At most ``max_names``
    classes are named: tiers are named whole, in order, while they fit; the first that does
    not and all after it are summed up as "the other N categories" (with the paper's ~10
    classes every class is named, and 30 classes still read as one sentence that fits a CLIP
    text encoder). ``outside`` is the column of purchases without a subcategory: never named
    as a category, it only adds "Some / Many / Most of their purchases are outside these
    categories." when it holds at least 5% of the cluster's buying.
    """
    s = np.asarray(centroid, dtype=np.float64)
    m = np.asarray(population_mean, dtype=np.float64)
    if len(class_names) != s.size:
        raise ValueError(f"{len(class_names)} class names for {s.size} shares")
    real = [j for j in range(s.size) if j != outside]
    rest = _outside_sentence(s[outside] if outside is not None else 0.0, detail)
    if not real or s[real].max() <= 0:
        return "Co-purchased by people who buy almost only products outside these categories."
    tiers = dict(zip(real, relation_tiers(s[real], m[real]), strict=True))
    # Within a tier: larger share first, then class order (stable, deterministic).
    order = sorted(real, key=lambda j: (-s[j], j))
    groups: list[list[int]] = [[j for j in order if tiers[j] == t] for t in range(len(TIERS))]

    def names(idx: list[int], t: int) -> list[str]:
        return [
            f"{class_names[j]} ({_percent(s[j])})" if detail and t <= 2 else class_names[j]
            for j in idx
        ]

    # The dominant tier is always named (its first max_names, the rest folded in the sum).
    lead, folded = groups[0][:max_names], groups[0][max_names:]
    shown = [[] for _ in TIERS]
    budget = max_names - len(lead)
    for t in range(1, len(TIERS)):
        if folded or len(groups[t]) > budget:
            folded += groups[t]
        else:
            shown[t] = groups[t]
            budget -= len(groups[t])

    top = lead[0]
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
    parts = [f"Co-purchased by people who {verb} {_join(names(lead, 0))}"]
    for t in (1, 2):
        if shown[t]:
            parts.append(f"{_PHRASES[t]} {_join(names(shown[t], t))}")
    tail = [f"{_PHRASES[t]} {_join(names(shown[t], t))}" for t in (3, 4) if shown[t]]
    if folded:
        n = len(folded)
        lowest = max(tiers[j] for j in folded)
        highest = min(tiers[j] for j in folded)
        if highest >= 3:
            how = _PHRASES[highest] if highest == lowest else "lower or minimal interest in"
        else:
            how = "similar or smaller shares of" if highest == 0 else "smaller shares of"
        tail.append(f"{how} the other {n} {'category' if n == 1 else 'categories'}")
    if tail:
        parts.append("while showing " + ", and ".join(tail))
    return ", ".join(parts) + "." + rest


def _outside_sentence(share: float, detail: bool) -> str:
    if detail and share > 0:
        return f" {_percent(share)} of their purchases are outside these categories."
    for least, word in _OUTSIDE:
        if share >= least:
            return f" {word} of their purchases are outside these categories."
    return ""
