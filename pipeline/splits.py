"""Seeded train/val/test node splits.

A node's place in the split comes from a hash of (seed, node key), not from a random number
generator: the result is the same on every numpy version and every machine, and a node keeps
its split when others are added or removed (only the cut points move).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

DEFAULT_RATIOS = (0.6, 0.1, 0.3)
SPLIT_NAMES = ("train", "val", "test")


def split_sizes(n: int, ratios: Sequence[float] = DEFAULT_RATIOS) -> tuple[int, int, int]:
    """Node counts of (train, val, test): rounded, the test split takes the remainder."""
    if len(ratios) != 3 or any(r < 0 for r in ratios):
        raise ValueError(f"ratios must be three non-negative numbers, got {tuple(ratios)}")
    total = float(sum(ratios))
    if total <= 0:
        raise ValueError("ratios must not all be zero")
    n_train = int(round(n * ratios[0] / total))
    n_val = min(int(round(n * ratios[1] / total)), n - n_train)
    return n_train, n_val, n - n_train - n_val


def _hash_key(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).digest()


def make_splits(
    nodes: int | Sequence[str],
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, val, test), each of length N, in node order.

    ``nodes`` is either the node count (keys are the node ids) or the node keys (asins) in
    node-id order. Exactly one mask is true per node; sizes follow ``split_sizes``.
    """
    keys = [str(i) for i in range(nodes)] if isinstance(nodes, int) else [str(a) for a in nodes]
    n = len(keys)
    if len(set(keys)) != n:
        raise ValueError("node keys must be unique")
    n_train, n_val, _ = split_sizes(n, ratios)
    # Rank nodes by their hash; ties are impossible in practice, the key breaks them anyway.
    order = sorted(range(n), key=lambda i: (_hash_key(seed, keys[i]), keys[i]))
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
    train = rank < n_train
    val = (rank >= n_train) & (rank < n_train + n_val)
    test = rank >= n_train + n_val
    return train, val, test


def split_labels(train: np.ndarray, val: np.ndarray, test: np.ndarray) -> list[str]:
    """One split name per node from the three masks."""
    out = np.full(len(train), "", dtype=object)
    out[train] = "train"
    out[val] = "val"
    out[test] = "test"
    return out.tolist()
