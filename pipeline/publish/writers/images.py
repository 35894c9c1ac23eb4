"""``images.tar``: images/{asin}.jpg in node order, member metadata fixed so the bytes depend
on the images only."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline.errors import UserError

FILE = "images.tar"
TAR_MTIME = 0


def write_images_tar(dest: Path, asins: list[str], files: list[Path], hashes: list[str]) -> int:
    """One member per node: ``files[i]`` (the stored JPEG of ``asins[i]``), checked against
    ``hashes[i]`` (its sha256) on the way in. Returns the member count."""
    with tarfile.open(dest / FILE, "w", format=tarfile.PAX_FORMAT) as tar:
        for asin, src, sha in zip(asins, files, hashes, strict=True):
            if not src.exists():
                raise UserError(f"image of {asin} missing from the store: {src}")
            data = src.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise UserError(f"image store file {src} does not match its sha256 (corrupt)")
            info = tarfile.TarInfo(f"images/{asin}.jpg")
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return len(asins)


def stored_sizes(
    images: pl.DataFrame, max_side: int | None = None, jpeg_quality: int | None = None
) -> dict[str, Any]:
    """What images.tar holds, for the card and the manifest: the stored long side (min /
    median / max px) and, where the source size is known, the source's and how many images
    were downscaled to ``max_side`` (the rest are at their source resolution)."""

    def spread(values: np.ndarray) -> dict[str, float | int]:
        if values.size == 0:
            return {"min": 0, "median": 0, "max": 0}
        return {
            "min": int(values.min()),
            "median": float(np.median(values)),
            "max": int(values.max()),
        }

    stored = images.select(pl.max_horizontal("width", "height")).to_series().drop_nulls()
    out: dict[str, Any] = {
        "format": "RGB JPEG",
        "jpeg_quality": jpeg_quality,
        "max_side": max_side,
        "long_side": spread(stored.to_numpy()),
    }
    known = images.filter(pl.col("orig_width").is_not_null() & pl.col("width").is_not_null())
    if known.height:
        src = known.select(pl.max_horizontal("orig_width", "orig_height")).to_series()
        dst = known.select(pl.max_horizontal("width", "height")).to_series()
        out["source_long_side"] = spread(src.to_numpy())
        out["downscaled"] = int((src > dst).sum())
        out["at_source_resolution"] = known.height - out["downscaled"]
    return out
