"""CLIP stage: image, title, description and combined embeddings plus CLIP-T scores.

Reads the candidate nodes (work/nodes.parquet), their texts (items_clean.parquet) and their
normalised JPEGs (images.parquet rows with status "ok", files in the image store) and writes
work/clip/ (see pipeline.workdir). CLIP-T = 100 x cosine(image, text), as in SLIP Table 1.

Models come from open_clip: a built-in name plus a pretrained tag, a local checkpoint file or
an open_clip model folder. The tiny config "acmmg-tiny" (pipeline/model_configs) is registered
here; with no pretrained weights the model is random but seeded, so runs are reproducible
without any download (tests, demo).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import polars as pl
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline import workdir
from pipeline.io import atomic_path, read_json, sha256_file, update_stats, write_json

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
TINY_MODEL = "acmmg-tiny"
KINDS = ("image", "title", "description", "combined")
PRECISIONS = ("auto", "fp32", "amp-bf16", "bf16", "amp-fp16", "fp16")
# Rows per resumable part: a killed run keeps every finished part (clip/.parts/<run key>/).
PART_ROWS = 4096
META_VERSION = 1
_CREATE_LOCK = threading.Lock()

if TINY_MODEL not in open_clip.list_models():
    open_clip.add_model_config(MODEL_CONFIG_DIR)


@dataclass
class ClipModel:
    """A loaded open_clip model with everything needed to encode on one device."""

    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    device: torch.device
    precision: str
    model_id: dict[str, Any] = field(default_factory=dict)

    @property
    def embed_dim(self) -> int:
        return int(self.model_id["embed_dim"])

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "amp-bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "amp-fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    @property
    def input_dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn "auto" into a concrete precision for ``device``.

    CUDA: fp16 autocast. CPU: weights in bf16 where the CPU computes bf16 natively (about 3x
    fp32 throughput; embeddings within cosine 0.9999 of fp32, CLIP-T within 0.2 points, see
    bench/README.md), else fp32 (emulated bf16 is slower than fp32).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "amp-fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision in ("amp-fp16", "fp16") and device.type != "cuda":
        raise ValueError(f"precision {precision!r} needs a CUDA device")
    return precision


class _QuietOpenClip(logging.Filter):
    """Drops open_clip's INFO chatter (it logs on the root logger); warnings still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "open_clip" not in record.pathname


def _fingerprint_path(path: Path) -> str:
    """sha256 of a checkpoint file, or of the config and weights open_clip uses in a folder."""
    if path.is_file():
        return sha256_file(path)
    # HF snapshots hold the weights in several formats (3 x 600 MB for ViT-B-32): hash only
    # the file open_clip will load, chosen by open_clip's own rule.
    chosen = open_clip.factory._find_checkpoint_in_dir(path)
    used = [path / "open_clip_config.json"] + ([Path(chosen)] if chosen else [])
    h = hashlib.sha256()
    for f in sorted(p for p in used if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def load_model(
    model: str = "ViT-B-32",
    pretrained: str | None = "openai",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
) -> ClipModel:
    """Load an open_clip model for inference.

    ``checkpoint`` (a weights file, or a folder with open_clip_config.json and weights, as
    downloaded from the HF Hub) overrides ``pretrained``. With neither, the weights are random
    but drawn after ``torch.manual_seed(seed)``, so the same model comes out every run.
    """
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    create_kwargs: dict[str, Any] = {}
    ckpt_sha = None
    if checkpoint is not None:
        ckpt = Path(checkpoint).expanduser().resolve()
        if not ckpt.exists():
            raise FileNotFoundError(f"checkpoint not found: {ckpt}")
        ckpt_sha = _fingerprint_path(ckpt)
        if ckpt.is_dir():
            # An open_clip model folder carries its own architecture config.
            model_name, weights = f"local-dir:{ckpt}", None
        else:
            if model not in open_clip.list_models():
                raise ValueError(f"unknown open_clip model {model!r}")
            model_name, weights = model, str(ckpt)
        pretrained = None
    else:
        model_name, weights = model, (pretrained or None)
        if model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model_name!r}")
        if weights:
            tag_cfg = open_clip.get_pretrained_cfg(model_name, weights)
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(model_name)
                raise ValueError(f"unknown pretrained tag {weights!r} for {model_name}: {tags}")
            # OpenAI-style weights were trained with QuickGELU; the plain config uses GELU.
            create_kwargs["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))

    quiet = _QuietOpenClip()
    logging.getLogger().addFilter(quiet)
    try:
        # torch's RNG is process-wide: two threads creating models at once (shard tasks on
        # a thread pool) would interleave their draws and get different random weights.
        with _CREATE_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net, _, preprocess = open_clip.create_model_and_transforms(
                model_name,
                pretrained=weights,
                precision="bf16" if prec == "bf16" else "fp16" if prec == "fp16" else "fp32",
                device=dev,
                **create_kwargs,
            )
        tokenizer = open_clip.get_tokenizer(model_name)
    finally:
        logging.getLogger().removeFilter(quiet)
    net.eval()
    visual = net.visual
    image_size = getattr(visual, "image_size", None)
    text_ctx = getattr(tokenizer, "context_length", None)
    with torch.no_grad():
        embed_dim = int(net.encode_text(tokenizer(["x"]).to(dev)).shape[-1])
    model_id = {
        "model": model_name,
        "pretrained": pretrained or None,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": ckpt_sha,
        "random_weights_seed": seed if (weights is None and checkpoint is None) else None,
        "quick_gelu": bool(create_kwargs.get("force_quick_gelu", False)),
        "embed_dim": embed_dim,
        "image_size": list(image_size) if isinstance(image_size, tuple) else image_size,
        "context_length": text_ctx,
        "device": dev.type,
        "precision": prec,
        "open_clip": open_clip.__version__,
        "torch": torch.__version__.split("+")[0],
    }
    return ClipModel(net, preprocess, tokenizer, dev, prec, model_id)


class _ImageFiles(Dataset):
    """Decodes and preprocesses one image per item, in DataLoader workers."""

    def __init__(self, paths: Sequence[str | Path], preprocess: Any, size: int):
        self.paths = [str(p) for p in paths]
        self.preprocess = preprocess
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            with Image.open(self.paths[i]) as im:
                return self.preprocess(im.convert("RGB")), True
        except Exception as e:  # a broken file must not kill the run: it is counted
            log.warning("cannot decode image %s: %s", self.paths[i], e)
            return torch.zeros(3, self.size, self.size), False


def _worker_init(_: int) -> None:
    # Each decode worker is one process; torch threads there would oversubscribe the CPUs.
    torch.set_num_threads(1)


def _image_side(cm: ClipModel) -> int:
    size = cm.model_id.get("image_size") or 224
    return int(size[0] if isinstance(size, (list, tuple)) else size)


@torch.no_grad()
def encode_images(
    cm: ClipModel,
    paths: Sequence[str | Path],
    batch_size: int = 64,
    num_workers: int = 2,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed image files. Returns (float32 [n, d] L2-normalised, bool [n] decoded ok).

    Rows of images that could not be decoded are NaN and False in the mask.
    """
    out = np.full((len(paths), cm.embed_dim), np.nan, dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    if not paths:
        return out, ok
    ds = _ImageFiles(paths, cm.preprocess, _image_side(cm))
    if num_workers > 0:
        # With this module preloaded in the fork server, each worker is a cheap fork of it
        # instead of a fresh interpreter importing torch (seconds per worker, per call).
        multiprocessing.set_forkserver_preload([__name__])
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        pin_memory=cm.device.type == "cuda",
        # Forked workers die at start inside a Prefect task run (its threads hold state a
        # fork cannot copy); a fork server starts them from a clean process.
        multiprocessing_context="forkserver" if num_workers > 0 else None,
    )
    row = 0
    for pixels, good in tqdm(loader, desc="images", unit="batch", disable=not progress):
        pixels = pixels.to(cm.device, dtype=cm.input_dtype, non_blocking=True)
        with cm.autocast():
            feats = cm.model.encode_image(pixels)
        feats = F.normalize(feats.float(), dim=-1).cpu().numpy()
        n = len(feats)
        good = good.numpy().astype(bool)
        out[row : row + n][good] = feats[good]
        ok[row : row + n] = good
        row += n
    return out, ok


@torch.no_grad()
def encode_texts(
    cm: ClipModel, texts: Sequence[str], batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """Embed texts (truncated to the model's context length). float32 [n, d], L2-normalised."""
    out = np.empty((len(texts), cm.embed_dim), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    for s in tqdm(starts, desc="texts", unit="batch", disable=not progress):
        tokens = cm.tokenizer(list(texts[s : s + batch_size])).to(cm.device)
        with cm.autocast():
            feats = cm.model.encode_text(tokens)
        out[s : s + len(tokens)] = F.normalize(feats.float(), dim=-1).cpu().numpy()
    return out


def clip_t(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """CLIP-T per row: 100 x cosine(image, text) (SLIP Table 1), float64 [n].

    Not clamped at 0 (torchmetrics' CLIPScore clamps); pretrained CLIP never gets near 0 on
    matched pairs, and an unclamped score keeps random-weight runs informative.
    """
    a = np.asarray(image_emb, dtype=np.float64)
    b = np.asarray(text_emb, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two [n, d] arrays of one shape, got {a.shape} and {b.shape}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 100.0 * np.einsum("ij,ij->i", a, b)


def join_description(desc: Sequence[str] | str | None) -> str:
    if desc is None:
        return ""
    if isinstance(desc, str):
        return desc.strip()
    return " ".join(s.strip() for s in desc if s and s.strip())


def load_inputs(work: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """The nodes to embed, sorted by asin: asin, path, sha256, title, description, combined.

    Candidate nodes come from nodes.parquet; a node needs a clean item row and an image with
    status "ok" whose file is in the store. The others are counted (the filter drops them).
    """
    work = Path(work)
    for name in (workdir.NODES, workdir.ITEMS_CLEAN, workdir.IMAGES):
        if not (work / name).exists():
            raise FileNotFoundError(f"{work / name} is missing: run the earlier stages first")
    nodes = pl.read_parquet(work / workdir.NODES, columns=["asin"]).unique()
    items = pl.read_parquet(work / workdir.ITEMS_CLEAN, columns=["asin", "title", "description"])
    images = pl.read_parquet(work / workdir.IMAGES, columns=["asin", "status", "sha256"])
    items = items.unique("asin", keep="first")
    images = images.unique("asin", keep="first")
    df = nodes.join(items, on="asin", how="left").join(images, on="asin", how="left")
    counts = {"candidates": df.height}
    no_item = df["title"].is_null()
    no_image = df["status"].is_null() | (df["status"] != "ok") | df["sha256"].is_null()
    counts["skipped_no_item"] = int(no_item.sum())
    counts["skipped_image_not_ok"] = int((~no_item & no_image).sum())
    df = df.filter(~no_item & ~no_image).sort("asin")
    paths = [str(workdir.image_store_path(work, s)) for s in df["sha256"]]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(
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


def _save_npy(dest: Path, arr: np.ndarray) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _parts(n: int, size: int) -> Iterator[tuple[int, int, int]]:
    for i, s in enumerate(range(0, n, size)):
        yield i, s, min(s + size, n)


def embed_work(
    work: Path,
    model: str = "ViT-B-32",
    pretrained: str | None = "openai",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int = 2,
    progress: bool = False,
    precision: str = "auto",
    text_batch_size: int | None = None,
    seed: int = 0,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Embed every candidate node of the work dir; write work/clip/. Returns the stats.

    Reuses finished work: nothing is computed when clip/meta.json names the same model,
    settings and input fingerprint, and finished parts of an interrupted run are kept.
    ``shard=(i, n)`` computes only the parts numbered i mod n and writes no outputs: n such
    calls (on several machines sharing ``work``) and then one plain call, which finds every
    part done and assembles, give the same bytes as one plain call, since a part is always
    the same rows in the same batches.
    """
    work = Path(work)
    out_dir = work / workdir.CLIP_DIR
    df, counts = load_inputs(work)
    cm = load_model(model, pretrained, checkpoint, device, precision, seed)
    text_bs = text_batch_size or max(batch_size, 256)
    settings = {"batch_size": batch_size, "text_batch_size": text_bs}
    fp = inputs_fingerprint(df)
    run_key = hashlib.sha256(
        json.dumps([cm.model_id, settings, fp], sort_keys=True).encode()
    ).hexdigest()
    meta_path = out_dir / "meta.json"
    if meta_path.exists():
        meta = read_json(meta_path)
        if meta.get("run_key") == run_key and all((out_dir / f"{k}.npy").exists() for k in KINDS):
            log.info("clip: reusing %s (same model, settings and inputs)", out_dir)
            return {**meta["stats"], "reused": True}

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
        if all((parts_dir / f"{k}_{i:05d}.npy").exists() for k in KINDS):
            continue
        chunk = df.slice(s, e - s)
        img, _ = encode_images(cm, chunk["path"].to_list(), batch_size, num_workers, progress)
        _save_npy(parts_dir / f"image_{i:05d}.npy", img)
        for kind in KINDS[1:]:
            col = chunk[kind].to_list()
            _save_npy(parts_dir / f"{kind}_{i:05d}.npy", encode_texts(cm, col, text_bs, progress))

    if shard is not None:
        return {"shard": list(shard), "parts": n_parts}

    def gather(kind: str) -> np.ndarray:
        arrs = [np.load(parts_dir / f"{kind}_{i:05d}.npy") for i in range(n_parts)]
        return np.concatenate(arrs) if arrs else np.zeros((0, cm.embed_dim), np.float32)

    emb = {k: gather(k) for k in KINDS}
    ok = ~np.isnan(emb["image"]).any(axis=1)
    counts["image_decode_failed"] = int((~ok).sum())
    keep = df.filter(pl.Series(ok))
    emb = {k: np.ascontiguousarray(v[ok]) for k, v in emb.items()}
    scores = pl.DataFrame(
        {
            "asin": keep["asin"],
            "clip_t_title": clip_t(emb["image"], emb["title"]),
            "clip_t_desc": clip_t(emb["image"], emb["description"]),
        },
        schema={"asin": pl.String, "clip_t_title": pl.Float64, "clip_t_desc": pl.Float64},
    )
    index = pl.DataFrame(
        {"asin": keep["asin"], "row": np.arange(keep.height, dtype=np.int64)},
        schema={"asin": pl.String, "row": pl.Int64},
    )
    for k, arr in emb.items():
        _save_npy(out_dir / f"{k}.npy", arr)
    with atomic_path(out_dir / "index.parquet") as tmp:
        index.write_parquet(tmp)
    with atomic_path(out_dir / "scores.parquet") as tmp:
        scores.write_parquet(tmp)

    def summary(col: str) -> dict[str, float | None]:
        v = scores[col].to_numpy()
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
    update_stats(work, {"clip": stats})
    log.info("clip: embedded %d nodes with %s", keep.height, cm.model_id["model"])
    return {**stats, "reused": False}
