"""``embeddings/<kind>_embeds.pt`` (torch.load) and ``.npy`` (numpy mmap): row i = node i."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

FOLDER = "embeddings"


def _write_tensor(arr: np.ndarray, path: Path) -> None:
    import torch

    # Written under its final name: torch names the zip's root folder after the file.
    torch.save(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), path)


def write_embeddings(dest: Path, embeds: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Both files of every kind; returns {kind: dimension}."""
    (dest / FOLDER).mkdir()
    for kind, arr in embeds.items():
        _write_tensor(arr, dest / FOLDER / f"{kind}_embeds.pt")
        np.save(dest / FOLDER / f"{kind}_embeds.npy", arr, allow_pickle=False)
    return {k: int(v.shape[1]) for k, v in embeds.items()}
