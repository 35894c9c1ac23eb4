"""What the embed stage reads: the candidate nodes with their texts and stored images."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipeline import workdir
from pipeline.errors import StageError


def join_description(desc: Sequence[str] | str | None) -> str:
    if desc is None:
        return ""
    if isinstance(desc, str):
        return desc.strip()
    return " ".join(s.strip() for s in desc if s and s.strip())


def load_inputs(work: Path, text_only: bool = False) -> tuple[pl.DataFrame, dict[str, int]]:
    """The nodes to embed, sorted by asin: asin, path, sha256, title, description, combined.

    Candidate nodes come from nodes.parquet; a node needs a clean item row and an image with
    status "ok" whose file is in the store. The others are counted (the filter drops them).
    ``text_only`` (pipeline/modality.py): no image is needed; path and sha256 are "".
    """
    work = Path(work)
    for name in (workdir.NODES, workdir.IMAGES):
        workdir.require(work / name, "input (run the earlier stages first)")
    nodes = pl.read_parquet(work / workdir.NODES, columns=["asin"]).unique()
    items = pl.read_parquet(workdir.items(work), columns=["asin", "title", "description"])
    images = pl.read_parquet(work / workdir.IMAGES, columns=["asin", "status", "sha256"])
    items = items.unique("asin", keep="first")
    images = images.unique("asin", keep="first")
    df = nodes.join(items, on="asin", how="left").join(images, on="asin", how="left")
    counts = {"candidates": df.height}
    no_item = df["title"].is_null()
    no_image = df["status"].is_null() | (df["status"] != "ok") | df["sha256"].is_null()
    if text_only:
        no_image = pl.Series([False] * df.height, dtype=pl.Boolean)
        df = df.with_columns(pl.col("sha256").fill_null(""))
    counts["skipped_no_item"] = int(no_item.sum())
    counts["skipped_image_not_ok"] = int((~no_item & no_image).sum())
    df = df.filter(~no_item & ~no_image).sort("asin")
    paths = [str(workdir.image_store_path(work, s)) if s else "" for s in df["sha256"]]
    missing = [p for p in paths if p and not Path(p).exists()]
    if missing:
        raise StageError(
            f"{len(missing)} images with status ok are not in the image store, e.g. {missing[0]}"
        )
    descs = [join_description(d) for d in df["description"].to_list()]
    titles = [(t or "").strip() for t in df["title"].to_list()]
    df = pl.DataFrame(
        {
            "asin": df["asin"],
            "path": paths,
            "sha256": df["sha256"],
            "title": titles,
            "description": descs,
            "combined": [f"{t} {d}".strip() for t, d in zip(titles, descs, strict=True)],
        }
    )
    counts["to_embed"] = df.height
    return df, counts


def inputs_fingerprint(df: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for asin, sha, title, desc in df.select("asin", "sha256", "title", "description").iter_rows():
        for v in (asin, sha, title, desc):
            h.update(v.encode())
            h.update(b"\0")
        h.update(b"\n")
    return h.hexdigest()
