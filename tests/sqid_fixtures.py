"""A published-layout folder and ESCI files, written here for the SQID export and search
tests. Title embeddings come from the real tiny CLIP (seeded random weights, as the embed
stage makes them), so the folder's model can be rebuilt and checked; image embeddings are
seeded unit vectors (both tests only copy or score them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.publish.assemble import NODE_SCHEMA

THINGS = ["speaker", "cable", "lamp", "mug", "chair", "headphones"]
COLORS = ["red", "blue", "green", "black"]
ESCI_COLUMNS = [
    "example_id",
    "query",
    "query_id",
    "product_id",
    "product_locale",
    "esci_label",
    "small_version",
    "large_version",
    "split",
]


def asin(i: int) -> str:
    return f"B0{i:08d}"


def tiny_model():
    from pipeline.clip import load_model

    return load_model("acmmg-tiny", None, device="cpu", precision="auto", seed=0)


def make_folder(
    root: Path,
    n: int = 24,
    image_urls: bool = True,
    images: bool = True,
    manifest_extra: dict | None = None,
) -> dict:
    """Write a folder (node_attributes in two shards, embeddings, manifest); returns
    asins, titles and the embedding arrays."""
    from pipeline.clip import encode_texts

    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    asins = [asin(i) for i in range(n)]
    titles = [f"{COLORS[i % 4]} {THINGS[i % 6]} model {i}" for i in range(n)]
    title = encode_texts(tiny_model(), titles)
    image = rng.normal(size=(n, title.shape[1])).astype(np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    (root / "node_attributes").mkdir()
    half = n // 2
    for k, (s, e) in enumerate([(0, half), (half, n)]):
        table = pa.table(
            {
                "asin": asins[s:e],
                "title": [f" {t} " for t in titles[s:e]],  # the embed stage strips titles
                "desc": [[f"about {t}"] for t in titles[s:e]],
                "class": [i % 3 for i in range(s, e)],
                "reviews": [[] for _ in range(s, e)],
                "node_id": list(range(s, e)),
            },
            schema=NODE_SCHEMA,
        )
        if image_urls:
            urls = [None if i % 5 == 4 else f"https://m.media-amazon.com/images/I/{i}.jpg"
                    for i in range(s, e)]  # fmt: skip
            table = table.append_column("image_url", pa.array(urls, pa.string()))
        pq.write_table(table, root / "node_attributes" / f"node_attributes_{k}.parquet")
    (root / "embeddings").mkdir()
    np.save(root / "embeddings" / "title_embeds.npy", title)
    if images:
        np.save(root / "embeddings" / "image_embeds.npy", image)
    manifest = {
        "category": "fixture",
        "version": "v1",
        "params": {"model": "acmmg-tiny", "pretrained": "", "seed": 7},
        **(manifest_extra or {}),
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return {"asins": asins, "titles": titles, "title": title, "image": image if images else None}


def make_examples(path: Path, asins: list[str], seed: int = 0) -> pl.DataFrame:
    """An ESCI examples file in the exact columns: selected queries on the folder's products
    plus rows every selection must drop (other locale, train split, large-only, products not
    in the folder) and bad rows (a bad label, a duplicate judgement)."""
    rng = np.random.default_rng(seed)
    rows = []

    def add(q, qid, pid, label, loc="us", small=1, large=1, split="test"):
        rows.append((len(rows) + 1, q, qid, pid, loc, label, small, large, split))

    for qid in range(1, 9):
        q = f"{COLORS[qid % 4]} {THINGS[qid % 6]}"
        picks = rng.choice(len(asins), size=6 + qid % 3, replace=False)
        for j, p in enumerate(picks):
            add(q, qid, asins[p], "ESCI"[(j + qid) % 4])
        add(q, qid, "B0NOTHERE1", "E")  # not in the folder
    add("only one", 20, asins[0], "E")  # one judged product: below min_judged 2
    add("only one", 20, "B0NOTHERE2", "S")
    add("all irrelevant", 21, asins[1], "I")
    add("all irrelevant", 21, asins[2], "I")
    add("otro idioma", 30, asins[3], "E", loc="es")
    add("otro idioma", 30, asins[4], "I", loc="es")
    add("train query", 31, asins[5], "E", split="train")
    add("train query", 31, asins[6], "S", split="train")
    add("large only", 32, asins[7], "E", small=0)
    add("large only", 32, asins[8], "C", small=0)
    add(next(r[1] for r in rows if r[2] == 1), 1, asins[9], "X")  # a bad label
    first = next(r for r in rows if r[2] == 2)
    add(first[1], 2, first[3], "I")  # the same (query, product) judged twice
    df = pl.DataFrame(rows, schema=ESCI_COLUMNS, orient="row")
    df.write_parquet(path)
    return df


def selected_judgements(df: pl.DataFrame, asins: list[str]) -> pl.DataFrame:
    """The judgements the default selection keeps, computed here with plain polars."""
    pos = {a: i for i, a in enumerate(asins)}
    sel = df.filter(
        (pl.col("product_locale") == "us")
        & (pl.col("small_version") == 1)
        & (pl.col("split") == "test")
        & pl.col("product_id").is_in(list(pos))
        & pl.col("esci_label").is_in(list("ESCI"))
    ).sort("example_id")
    sel = sel.unique(["query_id", "product_id"], keep="first", maintain_order=True)
    return sel.with_columns(pl.col("product_id").replace_strict(pos).alias("node_id"))
