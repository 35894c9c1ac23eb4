"""Read a published category folder for exports and benchmarks: its manifest, node table and
embeddings, and the CLIP model its embeddings came from (to embed new text, such as search
queries, in the same space).

Which model: the build's ``WORK/clip/meta.json`` names it exactly (architecture, pretrained
tag or checkpoint sha256, the seed of random weights, precision). A published folder carries
only ``manifest.json``'s ``params.model`` / ``params.pretrained`` today, so without
``--work`` the rest is the embed stage's defaults: seed 0 for random weights (the flow never
passes another) and precision "auto" (the rule the embed stage applied, so the same on the
same kind of machine). A manifest with a ``clip`` object (the meta's ``model``) is read as
the meta. Whatever the source, the model is checked before use: it re-embeds the first node
titles and must reproduce the published title embeddings (cosine >= MIN_COSINE), so a wrong
model is refused instead of giving meaningless scores.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import workdir
from pipeline.errors import UserError
from pipeline.params import param

log = logging.getLogger(__name__)

# bf16 against fp32 embeddings of one model stay above 0.9998 (tiny model, 50 titles); a
# different model or seed is far below (random 512-d vectors: about 0).
MIN_COSINE = 0.99
EMBED_KINDS = ("image", "title", "description", "combined")


@dataclass(frozen=True)
class FolderModelParams:
    """How to get the folder's CLIP model (only needed to embed new text)."""

    work: Path | None = param(
        None,
        help="the build's work directory: its clip/meta.json names the exact model (seed, "
        "precision, checkpoint); without it the manifest's model with the embed defaults",
        metavar="WORK",
    )
    checkpoint: Path | None = param(
        None, help="local weights of the folder's model (a file or an open_clip model folder)"
    )
    device: str = param("auto", help="auto (CUDA when present), cpu, cuda[:i]")
    verify: int = param(
        32,
        help="re-embed this many node titles and refuse a model that does not reproduce the "
        "published title embeddings (0: no check)",
    )


def resolve_published(folder: str | Path) -> Path:
    """A folder holding manifest.json, or a publish target's ``<slug>/`` (its LATEST)."""
    folder = Path(folder)
    if (folder / "manifest.json").is_file():
        return folder
    latest = folder / "LATEST"
    if latest.is_file():
        version = latest.read_text().strip()
        if (folder / "versions" / version / "manifest.json").is_file():
            return folder / "versions" / version
    raise UserError(f"{folder}: not a published category folder (no manifest.json)")


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except ValueError as e:
        raise UserError(f"{folder}/manifest.json is not valid JSON: {e}") from e


def read_nodes(folder: Path, columns: tuple[str, ...] = ("asin", "title")) -> pl.DataFrame:
    """node_id plus ``columns`` (those present) of every node, in node order (checked; the
    shards may come in any order)."""
    shards = sorted((folder / "node_attributes").glob("node_attributes_*.parquet"))
    if not shards:
        raise UserError(f"{folder}/node_attributes/node_attributes_<k>.parquet: no files found")
    have = set(pl.read_parquet_schema(shards[0]))
    cols = ["node_id", *(c for c in columns if c in have)]
    nodes = pl.concat([pl.read_parquet(p, columns=cols) for p in shards]).sort("node_id")
    if not np.array_equal(nodes["node_id"].to_numpy(), np.arange(nodes.height)):
        raise UserError(f"{folder}/node_attributes: node_id must be 0..{nodes.height - 1}")
    return nodes


def load_embeds(folder: Path, kind: str, n: int) -> np.ndarray | None:
    """embeddings/<kind>_embeds as float32 [n, d] (memory-mapped .npy), or None when the
    folder has none of that kind (a text-only folder has no image embeddings)."""
    npy = folder / "embeddings" / f"{kind}_embeds.npy"
    if npy.exists():
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    elif (folder / "embeddings" / f"{kind}_embeds.pt").exists():
        from pipeline.training.data import load_embeddings

        arr = load_embeddings(folder, kind).numpy()
    else:
        return None
    if arr.ndim != 2 or arr.shape[0] != n:
        raise UserError(f"{npy}: expected [{n}, d] (one row per node), got {arr.shape}")
    return np.asarray(arr, dtype=np.float32)


def model_spec(folder: Path, work: Path | None = None) -> dict[str, Any]:
    """The folder's CLIP model: model, pretrained, seed, precision, checkpoint_sha256 and
    where they were read ("clip/meta.json", "manifest clip", "manifest params")."""
    manifest = read_manifest(folder)
    meta, source = None, None
    if work is not None:
        path = Path(work) / workdir.CLIP_DIR / "meta.json"
        if not path.exists():
            raise UserError(f"--work {work}: {path} is missing (not the build's work dir?)")
        meta, source = json.loads(path.read_text()).get("model"), "clip/meta.json"
    elif isinstance(manifest.get("clip"), dict):
        meta, source = manifest["clip"], "manifest clip"
    if meta:
        return {
            "model": meta["model"],
            "pretrained": meta.get("pretrained") or None,
            "seed": meta.get("random_weights_seed") or 0,
            "precision": meta.get("precision") or "auto",
            "checkpoint_sha256": meta.get("checkpoint_sha256"),
            "source": source,
        }
    params = manifest.get("params") or {}
    if not params.get("model"):
        raise UserError(f"{folder}/manifest.json names no CLIP model (params.model)")
    return {
        "model": params["model"],
        "pretrained": params.get("pretrained") or None,
        "seed": 0,
        "precision": "auto",
        "checkpoint_sha256": None,
        "source": "manifest params",
    }


def load_folder_model(folder: Path, params: FolderModelParams) -> tuple[Any, dict[str, Any]]:
    """(pipeline.clip.ClipModel, spec) of the folder's model, checked against its title
    embeddings when ``params.verify``."""
    from pipeline import clip

    spec = model_spec(folder, params.work)
    try:
        device = clip.resolve_device(params.device)
    except ValueError as e:
        raise UserError(str(e)) from e
    precision = spec["precision"]
    if precision in ("amp-fp16", "fp16") and device.type != "cuda":
        precision = "auto"  # embedded on a GPU, queried on a CPU: within MIN_COSINE
    if spec["model"].startswith("local-dir:") and params.checkpoint is None:
        raise UserError(
            f"the folder was embedded with a local model folder ({spec['model'][10:]}): "
            "pass --checkpoint with that folder"
        )
    model = spec["model"] if not spec["model"].startswith("local-dir:") else "ViT-B-32"
    try:
        cm = clip.load_model(
            model,
            None if params.checkpoint else spec["pretrained"],
            checkpoint=params.checkpoint,
            device=params.device,
            precision=precision,
            seed=int(spec["seed"]),
        )
    except (OSError, RuntimeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"cannot load the folder's CLIP model {spec['model']} / {spec['pretrained']}: "
            f"{first}; on an offline machine pass --checkpoint with its weights"
        ) from e
    want_sha = spec["checkpoint_sha256"]
    got_sha = cm.model_id.get("checkpoint_sha256")
    if want_sha and got_sha and want_sha != got_sha:
        raise UserError(
            f"--checkpoint {params.checkpoint} is not the checkpoint the folder was embedded "
            f"with (sha256 {got_sha[:12]}..., the build used {want_sha[:12]}...)"
        )
    spec = {**spec, "precision_used": cm.precision, "device": cm.device.type}
    if params.verify > 0:
        spec["verify_min_cosine"] = verify_model(cm, folder, params.verify)
    return cm, spec


def verify_model(cm: Any, folder: Path, n: int) -> float:
    """Min cosine between the published title embeddings of the first ``n`` nodes and the
    model's embeddings of their titles; UserError below MIN_COSINE."""
    from pipeline.clip import encode_texts

    nodes = read_nodes(folder, ("title",))
    published = load_embeds(folder, "title", nodes.height)
    titles = [(t or "").strip() for t in nodes["title"].head(n).to_list()]
    if published is None:
        raise UserError(f"{folder}/embeddings/title_embeds.npy is missing")
    ours = encode_texts(cm, titles)
    ref = np.asarray(published[: len(titles)], dtype=np.float64)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = float(np.min(np.einsum("ij,ij->i", ours.astype(np.float64), ref)))
    if cos < MIN_COSINE:
        raise UserError(
            f"the CLIP model {cm.model_id['model']} (seed {cm.model_id['random_weights_seed']}, "
            f"{cm.precision}) does not reproduce {folder}'s title embeddings (min cosine "
            f"{cos:.4f} < {MIN_COSINE}): pass --work with the build's work directory or "
            "--checkpoint with the weights it used"
        )
    return round(cos, 6)


__all__ = [
    "FolderModelParams",
    "MIN_COSINE",
    "load_embeds",
    "load_folder_model",
    "model_spec",
    "read_manifest",
    "read_nodes",
    "resolve_published",
    "verify_model",
]
