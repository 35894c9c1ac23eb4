"""Image stage: fetch, verify and normalise product images (see stage.py for the contract).

``ImageConfig`` and ``normalize_image`` are light; ``fetch_images`` (which pulls in polars)
is imported on first use, so spawned worker processes stay small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ImageConfig
from .normalize import Normalized, Rejected, normalize_image

if TYPE_CHECKING:
    from .stage import fetch_images, load_candidates

__all__ = [
    "ImageConfig",
    "Normalized",
    "Rejected",
    "fetch_images",
    "load_candidates",
    "normalize_image",
]


def __getattr__(name: str) -> Any:
    if name in ("fetch_images", "load_candidates"):
        from . import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
