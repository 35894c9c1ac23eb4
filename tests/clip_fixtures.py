"""Work directories for the CLIP and filter tests, written here with Pillow and polars.

Independent of the image-fetch stage: images.parquet and the content-addressed store are
written directly, in the schemas of pipeline/workdir.py.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from pipeline import workdir
from pipeline.graph import node_table

COLORS = ["red", "blue", "green", "black", "white", "yellow", "purple", "orange"]
THINGS = ["speaker", "cable", "lamp", "mug", "chair", "headphones", "charger", "book"]


def render_jpeg(i: int, size: int = 96) -> bytes:
    """A small deterministic product-like picture: background colour plus a few shapes."""
    rng = np.random.default_rng(i)
    im = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
    d = ImageDraw.Draw(im)
    for _ in range(3):
        x, y = (int(v) for v in rng.integers(0, size - 20, 2))
        w = int(rng.integers(10, 40))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x, y, x + w, y + w], fill=fill)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def asin(i: int) -> str:
    return f"B{i:09d}"


def random_edges(n: int, p: float, seed: int) -> pl.DataFrame:
    """An Erdos-Renyi-like graph on asin(0..n-1), weights 1..6, src_asin < dst_asin."""
    rng = np.random.default_rng(seed)
    rows = [
        (asin(a), asin(b), int(rng.integers(1, 7)))
        for a, b in itertools.combinations(range(n), 2)
        if rng.random() < p
    ]
    return pl.DataFrame(
        rows, schema={"src_asin": pl.String, "dst_asin": pl.String, "weight": pl.Int64},
        orient="row",
    )  # fmt: skip


def write_graph(work: Path, edges: pl.DataFrame) -> None:
    work.mkdir(parents=True, exist_ok=True)
    edges.sort("src_asin", "dst_asin").write_parquet(work / workdir.EDGES)
    node_table(edges).write_parquet(work / workdir.NODES)


def write_items(work: Path, asins: list[str]) -> pl.DataFrame:
    rows = []
    for i, a in enumerate(asins):
        color, thing = COLORS[i % len(COLORS)], THINGS[(i // 3) % len(THINGS)]
        rows.append(
            {
                "asin": a,
                "title": f"{color.title()} {thing} model {i}",
                "description": [f"A {color} {thing}.", f"Item number {i} of the test set."],
                "features": ["feature"],
                "categories": ["Demo", thing.title()],
                "main_category": "Demo",
                "image_url": f"http://127.0.0.1:9/images/{a}.jpg",
                "store": "Test",
            }
        )
    df = pl.DataFrame(rows)
    df.write_parquet(work / workdir.ITEMS_CLEAN)
    return df


def write_images(
    work: Path, asins: list[str], status: dict[str, str] | None = None, size: int = 96
) -> pl.DataFrame:
    """images.parquet plus the store; ``status`` overrides "ok" per asin (no file then)."""
    status = status or {}
    rows = []
    for i, a in enumerate(asins):
        st = status.get(a, "ok")
        sha = None
        data = b""
        if st == "ok":
            data = render_jpeg(i, size)
            sha = hashlib.sha256(data).hexdigest()
            path = workdir.image_store_path(work, sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        rows.append(
            {
                "asin": a,
                "url": f"http://127.0.0.1:9/images/{a}.jpg",
                "status": st,
                "error": None if st == "ok" else st,
                "http_status": 200 if st == "ok" else 404,
                "bytes": len(data),
                "width": size if st == "ok" else None,
                "height": size if st == "ok" else None,
                "sha256": sha,
            }
        )
    df = pl.DataFrame(
        rows,
        schema={
            "asin": pl.String, "url": pl.String, "status": pl.String, "error": pl.String,
            "http_status": pl.Int64, "bytes": pl.Int64, "width": pl.Int64, "height": pl.Int64,
            "sha256": pl.String,
        },
    )  # fmt: skip
    df.write_parquet(work / workdir.IMAGES)
    return df
