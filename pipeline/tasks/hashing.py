"""Counter-based pseudo-randomness for the task files: splitmix64 on integer keys.

Draws made from hashes of (seed, key, counter) instead of a generator's stream are the same on
every machine and numpy version, and one key's draws do not depend on how many other keys
there are or in which order they come.
"""

from __future__ import annotations

import numpy as np

U64 = np.uint64
_M1, _M2 = U64(0xBF58476D1CE4E5B9), U64(0x94D049BB133111EB)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed bijection of uint64 arrays that scrambles every bit."""
    x = x ^ (x >> U64(30))
    x = x * _M1
    x = x ^ (x >> U64(27))
    x = x * _M2
    return x ^ (x >> U64(31))


def salt(*parts: int) -> np.uint64:
    """One uint64 from small integers (seed, stream, counter), hashed."""
    h = np.zeros(1, dtype=np.uint64)
    for p in parts:
        h = mix(h ^ np.array([p % (1 << 64)], dtype=np.uint64))
    return h[0]


def hash_order(ids: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """Indices that put non-negative integer ``ids`` in the order of their hashes (a seeded
    shuffle that keeps each id's place relative to the others when ids are added)."""
    h = mix(np.asarray(ids).astype(np.uint64) ^ salt(seed, stream))
    return np.lexsort((ids, h))
