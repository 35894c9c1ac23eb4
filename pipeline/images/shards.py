"""The image stage split by asin hash for a cluster: each shard fetches into a work
directory of its own, then the shards' journals and stored JPEGs are folded into the main
work directory, where the image stage itself only finalises (placeholders are judged over
all items, so that step is never sharded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from pipeline import workdir
from pipeline.images.config import ImageConfig
from pipeline.images.stage import JOURNAL_DIR, Journal, fetch_images
from pipeline.resources import Resources


def fetch_shard(work: Path, cfg: ImageConfig, shard: int, shards: int, res: Resources) -> str:
    """Fetch the candidates whose asin hashes to ``shard`` into their shard directory (it may
    run on another machine of a cluster that shares the work directory's filesystem)."""
    work = Path(work)
    sub = workdir.image_shard_dir(work, shard, shards)
    sub.mkdir(parents=True, exist_ok=True)
    nodes = pl.read_parquet(work / workdir.NODES)
    mine = nodes.filter(pl.col("asin").hash(seed=0) % shards == shard)
    mine.write_parquet(sub / workdir.NODES)
    items = workdir.items(work)
    (sub / items.name).unlink(missing_ok=True)
    (sub / items.name).symlink_to(items.resolve())
    fetch_images(sub, config=cfg)
    return str(sub)


def merge_shards(work: Path, cfg: ImageConfig, shards: int, res: Resources) -> int:
    """Fold every shard's journal and stored JPEGs into ``work``; returns the rows folded."""
    work = Path(work)
    journal = Journal(work / JOURNAL_DIR)
    rows = 0
    for shard in range(shards):
        d = workdir.image_shard_dir(work, shard, shards)
        part = Journal(d / JOURNAL_DIR).latest()
        journal.append_frame(part)
        rows += part.height
        for f in sorted((d / workdir.IMAGE_STORE).rglob("*.jpg")):
            dest = work / workdir.IMAGE_STORE / f.relative_to(d / workdir.IMAGE_STORE)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
    return rows
