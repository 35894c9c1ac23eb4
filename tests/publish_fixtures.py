"""A small published ACMMG category folder, written with plain parquet / torch / tar + our writer.

Independent of pipeline.publish.assemble on purpose: the DGL writer, the publish transport and
the downloader are tested against a folder whose every byte this file controls.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.publish.dgl_format import WEIGHT_DTYPE, write_dgl_graph
from pipeline.publish.targets import derive_version


def jpeg_bytes(i: int, size: int = 16) -> bytes:
    img = Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def random_edges(n: int, rng: np.random.Generator, per_node: int = 3) -> np.ndarray:
    """Unique undirected pairs (src < dst): a ring (so every node has edges) plus random ones."""
    pairs = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n)}
    while len(pairs) < n * per_node:
        a, b = rng.integers(0, n, 2)
        if a != b:
            pairs.add((int(min(a, b)), int(max(a, b))))
    return np.array(sorted(pairs), dtype=np.int64)


def write_images_tar(dest: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


def write_manifest(folder: Path, extra: dict | None = None, version: str | None = None) -> dict:
    files = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel != "manifest.json":
            files[rel] = {
                "size": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            }
    manifest = {"files": files, "version": version or derive_version(files), **(extra or {})}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def build_category_folder(
    folder: Path,
    n: int = 40,
    seed: int = 0,
    shards: int = 2,
    dim: int = 8,
    tar_members: list[tuple[str, bytes]] | None = None,
    label_override: dict[int, int] | None = None,
) -> dict:
    """Write the folder; return the arrays it holds (for assertions)."""
    import torch

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    asins = [f"B{seed:03d}{i:06d}" for i in range(n)]
    classes = rng.integers(0, 3, n).astype(np.int64)
    pairs = random_edges(n, rng)
    weight = rng.integers(3, 40, len(pairs)).astype(np.int64)
    relation = rng.integers(0, 4, len(pairs)).astype(np.int64)
    split = np.array(["train", "val", "test"])[rng.permutation(np.arange(n) % 3)]

    (folder / "node_attributes").mkdir(exist_ok=True)
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for k in range(shards):
        lo, hi = bounds[k], bounds[k + 1]
        table = pa.table(
            {
                "asin": asins[lo:hi],
                "title": [f"Product {i}" for i in range(lo, hi)],
                "desc": [[f"desc {i}", "more"] for i in range(lo, hi)],
                "class": classes[lo:hi],
                "reviews": [[f"review of {i}"] * (i % 4) for i in range(lo, hi)],
                "node_id": np.arange(lo, hi, dtype=np.int64),
            }
        )
        pq.write_table(table, folder / "node_attributes" / f"node_attributes_{k}.parquet")
    pq.write_table(
        pa.table(
            {"src": pairs[:, 0], "dst": pairs[:, 1], "weight": weight, "relation_id": relation}
        ),
        folder / "edges.parquet",
    )
    pq.write_table(
        pa.table({"node_id": np.arange(n, dtype=np.int64), "asin": asins, "split": split}),
        folder / "splits.parquet",
    )
    (folder / "node_categories.json").write_text(
        json.dumps({"0": "Speakers", "1": "Headphones", "2": "Cables"}, indent=2) + "\n"
    )
    (folder / "embeddings").mkdir(exist_ok=True)
    embeddings = {}
    for kind in ("image", "title", "description", "combined"):
        emb = rng.standard_normal((n, dim)).astype(np.float32)
        embeddings[kind] = emb
        torch.save(torch.from_numpy(emb), folder / "embeddings" / f"{kind}_embeds.pt")
        np.save(folder / "embeddings" / f"{kind}_embeds.npy", emb)
    relations = {
        "relations": {str(r): {"text": f"bought together for reason {r}"} for r in range(4)}
    }
    (folder / "relations.json").write_text(json.dumps(relations, indent=2) + "\n")
    members = tar_members
    if members is None:
        members = [(f"images/{a}.jpg", jpeg_bytes(i)) for i, a in enumerate(asins)]
    write_images_tar(folder / "images.tar", members)

    labels = classes.copy()
    for node, value in (label_override or {}).items():
        labels[node] = value
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    ndata = {
        "label": labels,
        "train_mask": split == "train",
        "val_mask": split == "val",
        "test_mask": split == "test",
    }
    edata = {
        "weight": np.concatenate([weight, weight]).astype(WEIGHT_DTYPE),
        "relation_id": np.concatenate([relation, relation]),
    }
    write_dgl_graph(folder / "dgl_graph.dgl", n, src, dst, ndata, edata)
    counts = {
        "nodes": n,
        "edges": len(pairs),
        "directed_edges": 2 * len(pairs),
        **{s: int((split == s).sum()) for s in ("train", "val", "test")},
    }
    manifest = write_manifest(folder, {"category": "demo", "counts": counts})
    return {
        "num_nodes": n,
        "src": src,
        "dst": dst,
        "ndata": ndata,
        "edata": edata,
        "asins": asins,
        "classes": classes,
        "split": split,
        "pairs": pairs,
        "weight": weight,
        "embeddings": embeddings,
        "relations": relations,
        "manifest": manifest,
    }
