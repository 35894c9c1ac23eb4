"""A synthetic work directory holding every file the classes and assemble stages read.

The contract files are written directly (polars, numpy, Pillow), so these tests do not depend
on the ingest / graph / images / clip stages' code.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from pipeline import stats as build_stats
from pipeline import workdir

SUBCATS = {
    "Audio": ["Headphones", "Speakers", "Microphones"],
    "Cables": ["HDMI", "USB"],
    "Cameras": ["Lenses", "Tripods", "Bodies"],
    "Storage": ["SSD", "Cards"],
}
DIM = 16


def _jpeg(rgb: tuple[int, int, int], tag: int) -> bytes:
    img = Image.new("RGB", (12, 10), rgb)
    img.putpixel((tag % 12, (tag // 12) % 10), (255 - rgb[0], 255 - rgb[1], 255 - rgb[2]))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


CLIP_MODEL = {
    "model": "acmmg-tiny",
    "pretrained": None,
    "random_weights_seed": 0,
    "precision": "fp32",
    "checkpoint": None,
    "checkpoint_sha256": None,
    "embed_dim": DIM,
}


def make_work(
    work: Path,
    n: int = 60,
    seed: int = 0,
    relations: bool = True,
    distribution: bool = False,
) -> dict:
    """Write a work dir with ``n`` final nodes (min degree 6) and return what was written.
    ``distribution``: the relations also carry each edge's relation_ids / relation_shares."""
    rng = np.random.default_rng(seed)
    work.mkdir(parents=True, exist_ok=True)
    # Asins in a shuffled order, so "node order = asin order" is really tested.
    asins = [f"B{v:09d}" for v in rng.choice(10**8, size=n, replace=False)]
    subcats = sorted(SUBCATS)
    cats = {}
    for i, a in enumerate(asins):
        top = subcats[i % len(subcats)]
        leaves = SUBCATS[top]
        path = ["Electronics", top, leaves[(i // len(subcats)) % len(leaves)]]
        if i % 17 == 0:
            path = path[:2]  # a short path: no leaf level
        cats[a] = path

    # Graph: circulant, each node joined to the next 3 (degree 6 everywhere).
    pairs = {}
    for i in range(n):
        for step in (1, 2, 3):
            a, b = asins[i], asins[(i + step) % n]
            lo, hi = min(a, b), max(a, b)
            pairs[(lo, hi)] = int(rng.integers(3, 12))
    edges = pl.DataFrame(
        {
            "src_asin": [p[0] for p in pairs],
            "dst_asin": [p[1] for p in pairs],
            "weight": list(pairs.values()),
        },
        schema={"src_asin": pl.String, "dst_asin": pl.String, "weight": pl.Int64},
    ).sort("src_asin", "dst_asin")
    deg = pl.concat([edges["src_asin"], edges["dst_asin"]]).value_counts()
    nodes = (
        deg.rename({"src_asin": "asin", "count": "degree"})
        .with_columns(pl.col("degree").cast(pl.Int64))
        .sort("asin")
    )
    (work / workdir.FINAL_DIR).mkdir(exist_ok=True)
    nodes.write_parquet(work / workdir.FINAL_DIR / workdir.NODES)
    edges.write_parquet(work / workdir.FINAL_DIR / workdir.EDGES)
    # The pre-filter graph too (one extra node the filter removed).
    nodes.write_parquet(work / workdir.NODES)
    edges.write_parquet(work / workdir.EDGES)

    # Items (plus one item that is not a node).
    items_asins = [*asins, "B999999999"]
    items = pl.DataFrame(
        {
            "asin": items_asins,
            "title": [f"Product {a} | {cats.get(a, ['x', 'y'])[-1]} deluxe" for a in items_asins],
            "description": [
                None if k == 3 else [f"Description of {a}.", f"Line {k}."]
                for k, a in enumerate(items_asins)
            ],
            "features": [[f"feature {k}"] for k in range(len(items_asins))],
            "categories": [cats.get(a, ["Electronics", "Audio"]) for a in items_asins],
            "main_category": ["All Electronics"] * len(items_asins),
            "image_url": [f"http://127.0.0.1/images/{a}.jpg" for a in items_asins],
            "store": ["Acme"] * len(items_asins),
        },
        schema_overrides={"description": pl.List(pl.String)},
    )
    items.write_parquet(work / workdir.ITEMS_CLEAN)

    # Reviews: node 0 has 40 (more than the cap), every 5th node none, some empty texts.
    rows = []
    for k, a in enumerate(asins):
        m = 40 if k == 0 else (0 if k % 5 == 4 else int(rng.integers(1, 8)))
        for j in range(m):
            rows.append(
                {
                    "user_id": f"U{int(rng.integers(0, 500)):04d}",
                    "asin": a,
                    "rating": float(rng.integers(1, 6)),
                    "ts": 1_600_000_000_000 + int(rng.integers(0, 10**9)),
                    "verified": bool(j % 2),
                    "helpful_votes": int(rng.integers(0, 4)),
                    "title": f"review title {j}",
                    "text": "   " if j == 1 else f"Review {j} of {a}: works well.",
                }
            )
    pl.DataFrame(rows).write_parquet(work / workdir.REVIEWS)

    # Images: content-addressed JPEGs; two nodes share identical bytes (same sha).
    img_rows = []
    image_bytes = {}
    for k, a in enumerate(asins):
        data = _jpeg((k * 4 % 256, 80, (200 - k) % 256), 0 if k in (1, 2) else k)
        if k == 2:
            data = image_bytes[asins[1]]
        sha = hashlib.sha256(data).hexdigest()
        path = workdir.image_store_path(work, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        image_bytes[a] = data
        img_rows.append(
            {
                "asin": a,
                "url": f"http://127.0.0.1/images/{a}.jpg",
                "status": "ok",
                "error": None,
                "http_status": 200,
                "bytes": len(data),
                "width": 12,
                "height": 10,
                # every third image was downscaled from a larger source
                "orig_width": 12 if k % 3 else 1200,
                "orig_height": 10 if k % 3 else 1000,
                "sha256": sha,
            }
        )
    img_rows.append(
        {
            "asin": "B999999999",
            "url": "http://127.0.0.1/x.jpg",
            "status": "error",
            "error": "404",
            "http_status": 404,
            "bytes": None,
            "width": None,
            "height": None,
            "orig_width": None,
            "orig_height": None,
            "sha256": None,
        }
    )
    pl.DataFrame(img_rows, infer_schema_length=None).write_parquet(work / workdir.IMAGES)

    # CLIP: index rows in a different order than the asins.
    clip = work / workdir.CLIP_DIR
    clip.mkdir(exist_ok=True)
    perm = rng.permutation(n)
    pl.DataFrame({"asin": asins, "row": perm.astype(np.int64)}).write_parquet(
        clip / "index.parquet"
    )
    embeds = {}
    for kind in ("image", "title", "description", "combined"):
        arr = rng.standard_normal((n, DIM)).astype(np.float32)
        arr /= np.linalg.norm(arr, axis=1, keepdims=True)
        np.save(clip / f"{kind}.npy", arr)
        embeds[kind] = arr
    pl.DataFrame(
        {
            "asin": asins,
            "clip_t_title": rng.normal(30, 4, n),
            "clip_t_desc": rng.normal(28, 4, n),
        }
    ).write_parquet(clip / "scores.parquet")
    (clip / "meta.json").write_text(json.dumps({"model": CLIP_MODEL, "version": 1}))

    if relations:
        rdir = work / workdir.RELATIONS_DIR
        rdir.mkdir(exist_ok=True)
        er = edges.select(
            pl.col("dst_asin").alias("src_asin"),  # reversed: the join must not care
            pl.col("src_asin").alias("dst_asin"),
            (pl.col("weight") % 3).cast(pl.Int64).alias("relation_id"),
            pl.col("weight").alias("relation_users"),
        )
        if distribution:  # top first: the relation_id, then the next one
            er = er.with_columns(
                pl.concat_list("relation_id", (pl.col("relation_id") + 1) % 3).alias(
                    "relation_ids"
                ),
                pl.concat_list(pl.lit(0.75), pl.lit(0.25)).alias("relation_shares"),
            )
        er.write_parquet(rdir / "edge_relations.parquet")
        (rdir / "relations.json").write_text(
            json.dumps({"relations": {str(i): f"relation {i}" for i in range(3)}}, indent=2)
        )

    # What the ingest, graph and embed stages would have recorded.
    build_stats.record(
        work,
        "ingest",
        "",
        {
            "reviews_read": len(rows),
            "sources": [{"uri": "Demo.jsonl.gz", "size": 100, "sha256": "ab" * 32}],
            "sources_meta": [{"uri": "meta_Demo.jsonl.gz", "size": 50, "sha256": "cd" * 32}],
        },
    )
    build_stats.record(work, "graph", "", {"edges": len(pairs)})
    build_stats.record(work, "embed", "clip", {"nodes": n, "model": "acmmg-tiny"})
    build_stats.record(
        work,
        "filter",
        "filter",
        {
            "params": {"min_clip_t": 15.0, "clip_t_percentile": 5.0, "clip_t_fields": "both"},
            "thresholds": {"clip_t_title": 22.5, "clip_t_desc": 20.25},
            "removed_by_clip_t": 4,
        },
    )
    return {
        "asins": asins,
        "cats": cats,
        "edges": edges,
        "embeds": embeds,
        "rows": perm,
        "image_bytes": image_bytes,
        "reviews": pl.DataFrame(rows),
    }
