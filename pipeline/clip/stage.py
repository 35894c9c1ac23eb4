"""The embed stage: image, title, description and combined embeddings plus CLIP-T scores.

Reads the candidate nodes (work/nodes.parquet), their texts (items_clean.parquet) and their
normalised JPEGs (images.parquet rows with status "ok", files in the image store) and writes
work/clip/ (see pipeline.workdir). CLIP-T = 100 x cosine(image, text), as in SLIP Table 1.

Models come from open_clip: a built-in name plus a pretrained tag, a local checkpoint file or
an open_clip model folder. The tiny config "acmmg-tiny" (pipeline/model_configs) is registered
here; with no pretrained weights the model is random but seeded, so runs are reproducible
without any download (tests, demo).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from pipeline import workdir
from pipeline.clip.params import KINDS, EmbedParams
from pipeline.clip.reader import inputs_fingerprint, load_inputs
from pipeline.io import atomic_path, write_json
from pipeline.modality import embed_kinds
from pipeline.resources import Resources

log = logging.getLogger(__name__)

# Rows per resumable part: a killed run keeps every finished part (clip/.parts/<run key>/).
PART_ROWS = 4096
META_VERSION = 1
# A part's texts (all three kinds): deduplicated, sorted by length, batches cut to length.
TEXT_ORDER = "dedup-sorted-trimmed"


def _save_npy(dest: Path, arr: np.ndarray) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _parts(n: int, size: int) -> Iterator[tuple[int, int, int]]:
    for i, s in enumerate(range(0, n, size)):
        yield i, s, min(s + size, n)


def embed_work(
    work: Path,
    p: EmbedParams = EmbedParams(),
    res: Resources = Resources(),
    shard: tuple[int, int] | None = None,
) -> dict:
    """Embed every candidate node of the work dir; write work/clip/. Returns the stats.

    Finished parts of an interrupted run are kept and reused. ``shard=(i, n)`` computes only
    the parts numbered i mod n and writes no outputs: n such calls (on several machines
    sharing ``work``) and then one plain call, which finds every part done and assembles,
    give the same bytes as one plain call, since a part is always the same rows in the same
    batches.
    """
    # torch and open_clip load here, not when the stage table is imported.
    from pipeline.clip.encode import clip_t, encode_images, encode_texts
    from pipeline.clip.model import load_model

    work = Path(work)
    out_dir = work / workdir.CLIP_DIR
    kinds_here = embed_kinds(work)  # no image kind in a text-only build (pipeline/modality.py)
    no_images = "image" not in kinds_here
    df, counts = load_inputs(work, text_only=no_images)
    cm = load_model(
        p.model, p.pretrained, p.checkpoint, p.device, p.precision, p.weights_seed, p.runtime
    )
    batch_size, num_workers, progress = p.batch_size, p.num_workers, res.progress
    text_bs = p.text_batch_size or max(batch_size, 256)
    # text_order: how a part's texts are batched (changing it may change the last bits).
    settings = {"batch_size": batch_size, "text_batch_size": text_bs, "text_order": TEXT_ORDER}
    fp = inputs_fingerprint(df)
    run_key = hashlib.sha256(
        json.dumps([cm.model_id, settings, fp], sort_keys=True).encode()
    ).hexdigest()
    meta_path = work / workdir.CLIP_META

    parts_root = out_dir / ".parts"
    parts_dir = parts_root / run_key[:16]
    if parts_root.exists():  # parts of runs with other models or inputs can never be reused
        for stale in parts_root.iterdir():
            if stale != parts_dir:
                shutil.rmtree(stale, ignore_errors=True)
    parts_dir.mkdir(parents=True, exist_ok=True)

    n = df.height
    n_parts = (n + PART_ROWS - 1) // PART_ROWS
    for i, s, e in tqdm(
        list(_parts(n, PART_ROWS)), desc="clip parts", unit="part", disable=not progress
    ):
        if shard is not None and i % shard[1] != shard[0]:
            continue
        if all((parts_dir / f"{k}_{i:05d}.npy").exists() for k in kinds_here):
            continue
        chunk = df.slice(s, e - s)
        if not no_images:
            img, _ = encode_images(cm, chunk["path"].to_list(), batch_size, num_workers, progress)
            _save_npy(parts_dir / f"image_{i:05d}.npy", img)
        # The three text kinds in one call: one tokenisation, one length sort, and a combined
        # text equal to its title (no description) is encoded once.
        kinds = KINDS[1:]
        texts = [t for kind in kinds for t in chunk[kind].to_list()]
        emb = encode_texts(cm, texts, text_bs, progress)
        for j, kind in enumerate(kinds):
            _save_npy(
                parts_dir / f"{kind}_{i:05d}.npy", emb[j * chunk.height : (j + 1) * chunk.height]
            )

    if shard is not None:
        return {"shard": list(shard), "parts": n_parts}

    def gather(kind: str) -> np.ndarray:
        arrs = [np.load(parts_dir / f"{kind}_{i:05d}.npy") for i in range(n_parts)]
        return np.concatenate(arrs) if arrs else np.zeros((0, cm.embed_dim), np.float32)

    emb = {k: gather(k) for k in kinds_here}
    if no_images:  # every node keeps its texts; no CLIP-T without an image (null)
        ok = np.ones(df.height, dtype=bool)
    else:
        ok = ~np.isnan(emb["image"]).any(axis=1)
    counts["image_decode_failed"] = int((~ok).sum())
    keep = df.filter(pl.Series(ok))
    emb = {k: np.ascontiguousarray(v[ok]) for k, v in emb.items()}
    none = [None] * keep.height
    scores = pl.DataFrame(
        {
            "asin": keep["asin"],
            "clip_t_title": none if no_images else clip_t(emb["image"], emb["title"]),
            "clip_t_desc": none if no_images else clip_t(emb["image"], emb["description"]),
        },
        schema={"asin": pl.String, "clip_t_title": pl.Float64, "clip_t_desc": pl.Float64},
    )
    index = pl.DataFrame(
        {"asin": keep["asin"], "row": np.arange(keep.height, dtype=np.int64)},
        schema={"asin": pl.String, "row": pl.Int64},
    )
    for k, arr in emb.items():
        _save_npy(work / workdir.clip_array(k), arr)
    if no_images:  # an earlier image build's array would be taken for this one's
        (work / workdir.clip_array("image")).unlink(missing_ok=True)
    with atomic_path(work / workdir.CLIP_INDEX) as tmp:
        index.write_parquet(tmp)
    with atomic_path(work / workdir.CLIP_SCORES) as tmp:
        scores.write_parquet(tmp)

    def summary(col: str) -> dict[str, float | None]:
        v = scores[col].drop_nulls().to_numpy()
        if not len(v):
            return {"mean": None, "std": None, "min": None, "max": None}
        return {
            "mean": round(float(v.mean()), 4),
            "std": round(float(v.std()), 4),
            "min": round(float(v.min()), 4),
            "max": round(float(v.max()), 4),
        }

    stats = {
        **counts,
        "embedded": keep.height,
        "embed_dim": cm.embed_dim,
        "clip_t_title": summary("clip_t_title"),
        "clip_t_desc": summary("clip_t_desc"),
    }
    # meta.json last: its run key marks the outputs as complete.
    write_json(
        meta_path,
        {
            "version": META_VERSION,
            "model": cm.model_id,
            "settings": settings,
            "inputs_sha256": fp,
            "run_key": run_key,
            "stats": stats,
        },
    )
    shutil.rmtree(parts_root, ignore_errors=True)
    log.info("clip: embedded %d nodes with %s", keep.height, cm.model_id["model"])
    return stats


def embed_shard(work: Path, p: EmbedParams, shard: int, shards: int, res: Resources) -> dict:
    """The parts ``shard`` mod ``shards`` of the candidates (the embed stage then assembles)."""
    return embed_work(work, p, res, shard=(shard, shards))
