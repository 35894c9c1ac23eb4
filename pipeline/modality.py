"""Which modalities a build has: images and texts, or texts only.

A build is text-only when no item of its metadata has an image URL: Amazon-M2's
products_train.csv (no images) without ``--image-urls`` or Amazon 2023 metadata beside it.
The rule is read from ``items.parquet`` (ingest's output, before cleaning), which every
stage that cares already depends on, so one function decides it for all of them: clean
keeps items without an image, the image stage fetches nothing, the embed stage encodes
texts only, the filter applies no image or CLIP-T rule, and assemble publishes no
images.tar and no image embeddings (manifest ``"modalities": ["text"]``, card says why).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline import workdir

IMAGE_AND_TEXT = ("image", "text")
TEXT_ONLY = ("text",)
TEXT_ONLY_REASON = (
    "no item of the metadata has an image URL (Amazon-M2's products_train.csv has none; "
    "pass --image-urls or Amazon 2023 metadata for images)"
)


def _count(path: Path, expr: pl.Expr) -> int | None:
    """``expr`` over the items table; None when there is none (or it cannot be read, as the
    placeholder files of the stage table): then images and a taxonomy are assumed."""
    try:
        return int(pl.scan_parquet(path).select(expr).collect().item())
    except (FileNotFoundError, pl.exceptions.PolarsError, OSError):
        return None


def modalities(work: Path) -> tuple[str, ...]:
    """("image", "text"), or ("text",) when the build's items have no image URL at all.
    Without an items table (a graph built from reviews only) images are assumed."""
    n = _count(Path(work) / workdir.ITEMS, pl.col("image_url").drop_nulls().len())
    return TEXT_ONLY if n == 0 else IMAGE_AND_TEXT


def text_only(work: Path) -> bool:
    return modalities(work) == TEXT_ONLY


def embed_kinds(work: Path) -> tuple[str, ...]:
    """The embedding kinds a build has (no image embeddings when text-only)."""
    kinds = workdir.CLIP_KINDS
    return tuple(k for k in kinds if k != "image") if text_only(work) else kinds


NO_TAXONOMY_REASON = (
    "no item of the metadata has a category path (Amazon-M2's products_train.csv has none; "
    "brand is not a class): no classes (class -1) and no RCML relations; join Amazon 2023 "
    "metadata for them"
)


def has_taxonomy(work: Path) -> bool:
    """Whether some item has a category path (the classes' and relations' source)."""
    return _count(Path(work) / workdir.ITEMS, (pl.col("categories").list.len() > 0).sum()) != 0


__all__ = [
    "NO_TAXONOMY_REASON",
    "TEXT_ONLY_REASON",
    "embed_kinds",
    "has_taxonomy",
    "modalities",
    "text_only",
]
