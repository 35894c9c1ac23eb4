"""A small generated published category folder for the training-module tests.

40 nodes in 4 colour classes. Images are class-coloured 64 px JPEGs in images.tar; titles name
the colour. The precomputed embeddings come from a 16-dim latent (class centre + a per-node
part) mapped into 512 dims by a different random projection per modality, so the published
image and text embeddings are NOT aligned (retrieval with them is near random) but a linear
map can align them: training has something real to learn. Edges are mostly within a class;
each edge's relation depends on its classes, so relations are predictable too.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from pipeline.splits import make_splits, split_labels

COLOURS = [
    ("red", (220, 30, 30)),
    ("green", (30, 200, 40)),
    ("blue", (30, 60, 220)),
    ("yellow", (230, 220, 40)),
]
NOUNS = ["lamp", "mug", "chair", "bottle", "box", "pen", "bag", "cup", "hat", "shoe"]
THEMES = ["kitchen things", "garden tools", "office supplies", "toys", "camping gear", "books"]
INTRA = "These two items represent the same product. Align their features accordingly."


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Autouse where imported: the test machine is shared, and one torch thread is much
    faster than two contended ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _jpeg(rgb: tuple[int, int, int], rng: np.random.Generator, size: int = 64) -> bytes:
    px = np.clip(np.array(rgb)[None, None, :] + rng.normal(0, 12, (size, size, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(px.astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_category_folder(
    dest: Path,
    n: int = 40,
    n_classes: int = 4,
    n_relations: int = 5,
    dim: int = 512,
    seed: int = 0,
    with_splits: bool = True,
    relation_lists: bool = False,
) -> Path:
    """``relation_lists``: edges.parquet also gets relation_ids / relation_shares (every
    other edge a second relation), as the relations stage publishes them."""
    rng = np.random.default_rng(seed)
    dest = Path(dest)
    (dest / "node_attributes").mkdir(parents=True)
    (dest / "embeddings").mkdir()
    labels = np.arange(n) % n_classes
    asins = [f"B{i:09d}" for i in range(n)]
    titles = [f"{COLOURS[c][0]} {NOUNS[i % len(NOUNS)]} number {i}" for i, c in enumerate(labels)]
    descs = [[f"A {COLOURS[c][0]} product.", f"Model {i}."] for i, c in enumerate(labels)]
    pl.DataFrame(
        {
            "asin": asins,
            "title": titles,
            "desc": descs,
            "class": labels.astype(np.int64),
            "reviews": [[f"nice {t}"] for t in titles],
            "node_id": np.arange(n, dtype=np.int64),
        }
    ).write_parquet(dest / "node_attributes" / "node_attributes_0.parquet")

    # Edges: within each class a ring plus chords (i -> i+2), then a few cross-class edges.
    edges = set()
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        k = len(members)
        for a in range(k):
            for step in (1, 2, 3):
                u, v = int(members[a]), int(members[(a + step) % k])
                if u != v:
                    edges.add((min(u, v), max(u, v)))
    for _ in range(n // 4):
        u, v = rng.choice(n, 2, replace=False)
        edges.add((int(min(u, v)), int(max(u, v))))
    src, dst = map(np.array, zip(*sorted(edges), strict=True))
    lu, lv = labels[src], labels[dst]
    relation = np.where(lu == lv, lu % n_relations, (lu + lv + 1) % n_relations).astype(np.int64)
    edges_df = pl.DataFrame(
        {
            "src": src.astype(np.int64),
            "dst": dst.astype(np.int64),
            "weight": rng.integers(3, 9, len(src)).astype(np.int64),
            "relation_id": relation,
            "relation_users": rng.integers(1, 5, len(src)).astype(np.int64),
        }
    )
    if relation_lists:
        second = (relation + 1) % n_relations
        ids = [
            [int(r), int(t)] if i % 2 else [int(r)]
            for i, (r, t) in enumerate(zip(relation, second, strict=True))
        ]
        shares = [[0.7, 0.3] if len(x) == 2 else [1.0] for x in ids]
        edges_df = edges_df.with_columns(
            pl.Series("relation_ids", ids, dtype=pl.List(pl.Int64)),
            pl.Series("relation_shares", shares, dtype=pl.List(pl.Float64)),
        )
    edges_df.write_parquet(dest / "edges.parquet")
    relations = [
        {
            "id": r,
            "text": f"Co-purchased by people who primarily buy {THEMES[r % len(THEMES)]}.",
            "users": 10 + r,
            "edges": int((relation == r).sum()),
            "shares": {},
        }
        for r in range(n_relations)
    ]
    (dest / "relations.json").write_text(json.dumps({"intra_text": INTRA, "relations": relations}))
    (dest / "node_categories.json").write_text(
        json.dumps({str(c): COLOURS[c][0].title() for c in range(n_classes)})
    )

    with tarfile.open(dest / "images.tar", "w") as tar:
        for asin, c in zip(asins, labels, strict=True):
            data = _jpeg(COLOURS[c][1], rng)
            info = tarfile.TarInfo(f"images/{asin}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    latent_dim = 16
    centres = rng.normal(0, 1.0, (n_classes, latent_dim))
    latent = 1.5 * centres[labels] + rng.normal(0, 1.0, (n, latent_dim))
    proj_v, proj_t = rng.normal(0, 1, (2, latent_dim, dim))
    for kind, proj in (
        ("image", proj_v),
        ("title", proj_t),
        ("description", proj_t),
        ("combined", proj_t),
    ):
        e = latent @ proj + rng.normal(0, 0.05, (n, dim))
        e = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
        torch.save(torch.from_numpy(e), dest / "embeddings" / f"{kind}_embeds.pt")

    if with_splits:
        train, val, test = make_splits(asins, seed=0)
        pl.DataFrame(
            {
                "node_id": np.arange(n, dtype=np.int64),
                "asin": asins,
                "split": split_labels(train, val, test),
            }
        ).write_parquet(dest / "splits.parquet")
    (dest / "manifest.json").write_text(json.dumps({"params": {"seed": 0}}))
    return dest
