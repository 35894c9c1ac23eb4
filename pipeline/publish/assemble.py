"""Assemble the published ACMMG category folder from a build work directory.

Layout (see /work/shared/DESIGN.md; the ACMMG card's loading snippet works on it unchanged):

    node_attributes/node_attributes_<k>.parquet  asin, title, desc, class, reviews, node_id
    embeddings/{image,title,description,combined}_embeds.pt   float32 [N, d] (torch.load)
    embeddings/{image,title,description,combined}_embeds.npy  the same, memory-mappable
    images.tar           images/{asin}.jpg, one per node, node order, fixed metadata
    edges.parquet        src, dst (node ids, src < dst), weight [, relation_id, relation_users]
    splits.parquet       node_id, asin, split ("train" | "val" | "test")
    dgl_graph.dgl        both directions: edge i and edge i + E are reverses of each other
    node_categories.json class index -> name
    relations.json       RCML relation texts (when the relations stage ran)
    README.md + *.png    dataset card and plots (pipeline.publish.card)
    manifest.json        sha256 + size of every other file, counts, parameters, provenance

Node i is the same product in every file: node ids are positions in the asin-sorted node
list. Every file except manifest.json (its build_time) is byte-identical across two builds of
the same work directory and parameters. The folder is written beside ``out`` and renamed into
place, so a killed run never leaves a half-written folder at ``out``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

import pipeline
from pipeline import stats as build_stats_
from pipeline import workdir
from pipeline.errors import UserError
from pipeline.io import read_json, sha256_file
from pipeline.params import param
from pipeline.publish.card import CardData, write_card
from pipeline.publish.dgl_format import WEIGHT_DTYPE, write_dgl_graph
from pipeline.resources import Resources
from pipeline.reviews_select import DEFAULT_MAX_REVIEWS, select_reviews
from pipeline.splits import DEFAULT_RATIOS, make_splits, split_labels, split_sizes

log = logging.getLogger(__name__)

EMBEDDING_KINDS = workdir.CLIP_KINDS
MANIFEST = workdir.MANIFEST
FORMAT = "acmmg-category/1"
TAR_MTIME = 0  # fixed member metadata: the tar's bytes depend on the images only
ROW_GROUP_ROWS = 10_000
_SAFE_ASIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

NODE_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("title", pa.string()),
        ("desc", pa.list_(pa.string())),
        ("class", pa.int64()),
        ("reviews", pa.list_(pa.string())),
        ("node_id", pa.int64()),
    ]
)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with fixed settings, so the same table always gives the same bytes."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        row_group_size=ROW_GROUP_ROWS,
        version="2.6",
        data_page_version="1.0",
    )


def build_time() -> str:
    """ISO-8601 UTC build time: SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
        if epoch
        else dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def content_version(files: dict[str, dict]) -> str:
    """Deterministic version: first 16 hex of sha256 over the sorted (path, sha256) list."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\x00{files[path]['sha256']}\n".encode())
    return h.hexdigest()[:16]


def file_inventory(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, dict]:
    """{relative posix path: {"size", "sha256"}} for every file under ``folder``."""
    out: dict[str, dict] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = p.relative_to(folder).as_posix()
            if rel not in exclude:
                out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class AssembleParams:
    category: str = param(help="the category's slug (its folder name)", cli=False, setting=False)
    max_reviews: int = param(DEFAULT_MAX_REVIEWS, "reviews per node (most helpful first)")
    seed: int = param(0, "seed of the node splits")
    shard_rows: int = param(100_000, "nodes per node_attributes shard")
    split_ratios: tuple[float, ...] = param(DEFAULT_RATIOS, "train, val and test fractions")
    license: str = param("cc-by-4.0", "the dataset's license (card header)")
    build_params: dict = param(
        {}, "the build's settings, recorded in the manifest", cli=False, setting=False
    )

    def __post_init__(self) -> None:
        if self.shard_rows < 1:
            raise UserError(f"shard_rows must be >= 1, got {self.shard_rows}")
        if len(self.split_ratios) != 3:
            raise UserError("split_ratios takes three fractions: train, val, test")


# ----------------------------------------------------------------------------- inputs

_require = workdir.require


def _load_nodes(work: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Final nodes (asin, node_id, class, class_name) and edges (src_asin, dst_asin, weight).

    Nodes are the final graph's nodes that have a class (rare="drop" leaves some out, the
    classes stage having recomputed the k-core), in asin order.
    """
    nodes_path, edges_path = workdir.final_graph(work)
    _require(nodes_path, "graph nodes (run the graph / filter stages)")
    _require(edges_path, "graph edges (run the graph / filter stages)")
    classes_path = _require(work / workdir.CLASSES, "class labels (run the classes stage)")
    graph_nodes = pl.read_parquet(nodes_path, columns=["asin"]).unique()
    classes = pl.read_parquet(classes_path, columns=["asin", "class", "class_name"])
    if classes["asin"].n_unique() != classes.height:
        raise UserError(f"{classes_path}: duplicate asins")
    stray = classes.join(graph_nodes, on="asin", how="anti").height
    if stray:
        raise UserError(
            f"{classes_path} labels {stray} nodes that are not in {nodes_path}: it is stale, "
            "rerun the classes stage"
        )
    unlabelled = graph_nodes.join(classes, on="asin", how="anti").height
    stats = build_stats_.merged(work)
    if unlabelled and stats.get("classes", {}).get("rare") != "drop":
        raise UserError(
            f"{unlabelled} graph nodes have no class in {classes_path}: it is stale, "
            "rerun the classes stage"
        )
    nodes = (
        classes.sort("asin")
        .with_row_index("node_id")
        .with_columns(pl.col("node_id").cast(pl.Int64), pl.col("class").cast(pl.Int64))
        .select("asin", "node_id", "class", "class_name")
    )
    bad = [a for a in nodes["asin"].to_list() if not _SAFE_ASIN.match(a)]
    if bad:
        raise UserError(f"asins unsafe as file names, e.g. {bad[:3]}")
    edges = pl.read_parquet(edges_path, columns=["src_asin", "dst_asin", "weight"])
    info = {"nodes_without_class": unlabelled}
    return nodes, edges, info


def _edge_table(work: Path, nodes: pl.DataFrame, edges: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Published edges: src < dst node ids, one row per undirected edge, sorted."""
    ids = nodes.select("asin", "node_id")
    e = (
        edges.join(ids.rename({"asin": "src_asin", "node_id": "a"}), on="src_asin", how="inner")
        .join(ids.rename({"asin": "dst_asin", "node_id": "b"}), on="dst_asin", how="inner")
        .filter(pl.col("a") != pl.col("b"))
    )
    outside = edges.height - e.height
    e = e.with_columns(
        pl.min_horizontal("a", "b").alias("src"),
        pl.max_horizontal("a", "b").alias("dst"),
        pl.min_horizontal("src_asin", "dst_asin").alias("lo_asin"),
        pl.max_horizontal("src_asin", "dst_asin").alias("hi_asin"),
        pl.col("weight").cast(pl.Int64),
    )
    if e.select(pl.struct("src", "dst").n_unique()).item() != e.height:
        raise UserError("the final edges hold the same node pair twice")
    if e.height and e["weight"].min() <= 0:
        raise UserError("the final edges hold non-positive weights")
    cols = ["src", "dst", "weight"]
    info: dict[str, Any] = {"edges_outside_nodes": outside}
    rel_path = work / workdir.EDGE_RELATIONS
    if rel_path.exists():
        rel = pl.read_parquet(
            rel_path, columns=["src_asin", "dst_asin", "relation_id", "relation_users"]
        )
        rel = rel.select(
            pl.min_horizontal("src_asin", "dst_asin").alias("lo_asin"),
            pl.max_horizontal("src_asin", "dst_asin").alias("hi_asin"),
            pl.col("relation_id").cast(pl.Int64),
            pl.col("relation_users").cast(pl.Int64),
        ).unique(subset=["lo_asin", "hi_asin"], keep="first", maintain_order=True)
        e = e.join(rel, on=["lo_asin", "hi_asin"], how="left")
        info["edges_without_relation"] = e["relation_id"].null_count()
        cols += ["relation_id", "relation_users"]
    if outside:
        log.info("assemble: %d edges touch nodes outside the published node set", outside)
    return e.select(cols).sort("src", "dst"), info


def _items(work: Path, asins: pl.Series) -> pl.DataFrame:
    path = workdir.items(work)
    items = (
        pl.scan_parquet(path)
        .select("asin", "title", "description")
        .filter(pl.col("asin").is_in(asins.implode()))
        .unique(subset="asin", keep="first", maintain_order=True)
        .collect()
    )
    missing = asins.len() - items.height
    if missing:
        raise UserError(f"{missing} nodes have no row in {path}")
    return items.with_columns(pl.col("description").fill_null([]).alias("desc")).drop("description")


def _embeddings(work: Path, asins: list[str]) -> dict[str, np.ndarray]:
    index = pl.read_parquet(_require(work / workdir.CLIP_INDEX, "CLIP index (run the clip stage)"))
    pos = dict(zip(index["asin"].to_list(), index["row"].to_list(), strict=True))
    missing = [a for a in asins if a not in pos]
    if missing:
        raise UserError(f"{len(missing)} nodes have no CLIP embedding, e.g. {missing[:3]}")
    rows = np.asarray([pos[a] for a in asins], dtype=np.int64)
    out = {}
    for kind in EMBEDDING_KINDS:
        path = _require(work / workdir.clip_array(kind), f"{kind} embeddings")
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or (rows.size and rows.max() >= arr.shape[0]):
            raise UserError(f"{path}: shape {arr.shape} does not match the index")
        out[kind] = np.ascontiguousarray(arr[rows], dtype=np.float32)
    return out


def _image_hashes(work: Path, asins: pl.Series) -> list[str]:
    path = _require(work / workdir.IMAGES, "image table (run the images stage)")
    img = pl.read_parquet(path)
    usable = img.filter(pl.col("sha256").is_not_null())
    if "status" in img.columns:
        usable = usable.filter(pl.col("status") == "ok")
    usable = usable.select("asin", "sha256").sort("asin", "sha256").unique("asin", keep="first")
    table = pl.DataFrame({"asin": asins}).join(usable, on="asin", how="left", maintain_order="left")
    missing = table.filter(pl.col("sha256").is_null())["asin"].to_list()
    if missing:
        raise UserError(f"{len(missing)} nodes have no stored image, e.g. {missing[:3]}")
    return table["sha256"].to_list()


def _write_images_tar(work: Path, dest: Path, asins: list[str], hashes: list[str]) -> int:
    """images/{asin}.jpg in node order; member metadata fixed so the bytes are reproducible."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for asin, sha in zip(asins, hashes, strict=True):
            src = workdir.image_store_path(work, sha)
            if not src.exists():
                raise UserError(f"image of {asin} missing from the store: {src}")
            data = src.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise UserError(f"image store file {src} does not match its sha256 (corrupt)")
            info = tarfile.TarInfo(f"images/{asin}.jpg")
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return len(asins)


def _write_tensor(arr: np.ndarray, dest: Path) -> None:
    import torch

    # Written under its final name: torch names the zip's root folder after the file.
    torch.save(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), dest)


def _node_category_names(work: Path, nodes: pl.DataFrame) -> dict[int, str]:
    path = _require(work / workdir.NODE_CATEGORIES, "node_categories.json (run the classes stage)")
    mapping = {int(k): str(v) for k, v in read_json(path).items()}
    pairs = nodes.select("class", "class_name").unique()
    for c, name in pairs.iter_rows():
        if mapping.get(c) != name:
            raise UserError(
                f"{path} maps class {c} to {mapping.get(c)!r}, classes.parquet to {name!r}"
            )
    return dict(sorted(mapping.items()))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


# ----------------------------------------------------------------------------- assemble


def assemble(work: Path, p: AssembleParams, res: Resources = Resources()) -> dict:
    """The assemble stage: the category folder in ``work/publish/<slug>/``; returns its
    version and counts."""
    out = assemble_category(work, workdir.publish_folder(work, p.category), p)
    manifest = read_json(out / MANIFEST)
    return {"folder": str(out), "version": manifest["version"], **manifest["counts"]}


def assemble_category(work: Path, out: Path, p: AssembleParams) -> Path:
    """Write the ACMMG folder of ``p.category`` from ``work`` to ``out`` (replaced
    atomically); ``p.build_params`` are recorded in the manifest and the card. Returns
    ``out``."""
    work, out = Path(work), Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _build(
            work,
            tmp,
            p.category,
            p.build_params,
            p.shard_rows,
            p.max_reviews,
            p.seed,
            tuple(p.split_ratios),
            p.license,
        )
        tmp.chmod(0o755)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` onto ``out``; an old ``out`` is moved aside first, then deleted."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _build(
    work: Path,
    dest: Path,
    category: str,
    params: dict,
    shard_rows: int,
    max_reviews: int,
    seed: int,
    ratios: tuple[float, float, float],
    license: str,
) -> None:
    stats = build_stats_.merged(work)
    nodes, raw_edges, node_info = _load_nodes(work)
    n = nodes.height
    if n == 0:
        raise UserError(f"{work}: no nodes to publish")
    asins = nodes["asin"].to_list()
    class_names = _node_category_names(work, nodes)

    # Graph, splits, labels.
    edges, edge_info = _edge_table(work, nodes, raw_edges)
    train, val, test = make_splits(asins, seed=seed, ratios=ratios)
    labels = nodes["class"].to_numpy().astype(np.int64)

    # Node attributes, one shard at a time (reviews are the bulk of the bytes).
    items = _items(work, nodes["asin"])
    attrs = nodes.select("asin", "node_id", "class").join(
        items, on="asin", how="left", maintain_order="left"
    )
    (dest / "node_attributes").mkdir()
    review_counts = np.zeros(n, dtype=np.int64)
    shards = 0
    reviews_path = _require(work / workdir.REVIEWS, "reviews (run the ingest stage)")
    for start in range(0, n, shard_rows):
        part = attrs.slice(start, shard_rows)
        rev = select_reviews(reviews_path, part["asin"].to_list(), max_reviews=max_reviews)
        part = part.join(
            rev.select("asin", "reviews"), on="asin", how="left", maintain_order="left"
        )
        part = part.with_columns(pl.col("reviews").fill_null([]))
        review_counts[start : start + part.height] = part["reviews"].list.len().to_numpy()
        table = part.select("asin", "title", "desc", "class", "reviews", "node_id").to_arrow()
        write_parquet(
            table.cast(NODE_SCHEMA), dest / "node_attributes" / f"node_attributes_{shards}.parquet"
        )
        shards += 1

    # Embeddings: row i = node i.
    (dest / "embeddings").mkdir()
    embeds = _embeddings(work, asins)
    dims = {k: int(v.shape[1]) for k, v in embeds.items()}
    for kind, arr in embeds.items():
        _write_tensor(arr, dest / "embeddings" / f"{kind}_embeds.pt")
        np.save(dest / "embeddings" / f"{kind}_embeds.npy", arr, allow_pickle=False)
    del embeds

    # Images.
    hashes = _image_hashes(work, nodes["asin"])
    n_images = _write_images_tar(work, dest / "images.tar", asins, hashes)

    # Framework-neutral tables.
    write_parquet(edges.to_arrow(), dest / "edges.parquet")
    splits = pl.DataFrame(
        {
            "node_id": np.arange(n, dtype=np.int64),
            "asin": asins,
            "split": split_labels(train, val, test),
        }
    )
    write_parquet(splits.to_arrow(), dest / "splits.parquet")
    (dest / "node_categories.json").write_text(
        json.dumps({str(k): v for k, v in class_names.items()}, indent=2, ensure_ascii=False) + "\n"
    )
    relations_json = work / workdir.RELATIONS_JSON
    if "relation_id" in edges.columns and relations_json.exists():
        shutil.copyfile(relations_json, dest / "relations.json")

    # DGL: both directions, edge i + E is the reverse of edge i.
    src = edges["src"].to_numpy().astype(np.int64)
    dst = edges["dst"].to_numpy().astype(np.int64)
    weight = edges["weight"].to_numpy().astype(WEIGHT_DTYPE)
    edata: dict[str, np.ndarray] = {"weight": np.concatenate([weight, weight])}
    if "relation_id" in edges.columns and edges["relation_id"].null_count() == 0:
        rel = edges["relation_id"].to_numpy().astype(np.int64)
        edata["relation_id"] = np.concatenate([rel, rel])
    write_dgl_graph(
        dest / "dgl_graph.dgl",
        n,
        np.concatenate([src, dst]),
        np.concatenate([dst, src]),
        ndata={"label": labels, "train_mask": train, "val_mask": val, "test_mask": test},
        edata=edata,
    )

    # Card and plots.
    titles = attrs["title"].to_list()
    scores = _clip_scores(work, nodes)
    degrees = np.bincount(np.concatenate([src, dst]), minlength=n)
    class_stats = stats.get("classes", {})
    counts = {
        "nodes": n,
        "edges": edges.height,
        "directed_edges": 2 * edges.height,
        "classes": len(class_names),
        "images": n_images,
        "reviews": int(review_counts.sum()),
        "nodes_with_reviews": int((review_counts > 0).sum()),
        "node_attribute_shards": shards,
        "embedding_dims": dims,
        "train": int(train.sum()),
        "val": int(val.sum()),
        "test": int(test.sum()),
    }
    if "relation_id" in edges.columns:
        counts["relations"] = int(edges["relation_id"].drop_nulls().n_unique())
    all_params = _jsonable(
        {
            **params,
            "category": category,
            "shard_rows": shard_rows,
            "max_reviews": max_reviews,
            "seed": seed,
            "split_ratios": list(ratios),
            "license": license,
        }
    )
    publish_stats = {"nodes": n, "edges": edges.height, **node_info, **edge_info}
    build_stats = {k: v for k, v in stats.items() if k != "sources"}
    filter_stats = work / workdir.FILTER_STATS
    if "filter" not in build_stats and filter_stats.exists():
        build_stats["filter"] = read_json(filter_stats)
    build_stats["publish"] = publish_stats
    class_sizes = np.bincount(labels, minlength=len(class_names))
    write_card(
        dest,
        CardData(
            category=category,
            license=license,
            counts=counts,
            params=all_params,
            build_stats=_jsonable(build_stats),
            sources=_jsonable(stats.get("sources")),
            class_names=[class_names[i] for i in sorted(class_names)],
            class_sizes=[int(c) for c in class_sizes],
            class_info=_jsonable(class_stats),
            degrees=degrees,
            weights=edges["weight"].to_numpy(),
            clip_t_title=scores[0],
            clip_t_desc=scores[1],
            titles=titles,
            src=src,
            dst=dst,
            split_sizes=split_sizes(n, ratios),
            node_classes=labels,
            seed=seed,
            relations=read_json(dest / "relations.json")
            if (dest / "relations.json").exists()
            else None,
        ),
    )

    # Manifest last: it lists every other file.
    files = file_inventory(dest)
    manifest = {
        "format": FORMAT,
        "category": category,
        "version": content_version(files),
        "pipeline_version": pipeline.__version__,
        "build_time": build_time(),
        "counts": counts,
        "params": all_params,
        "sources": _jsonable(stats.get("sources")),
        "stats": _jsonable(build_stats),
        "files": files,
    }
    (dest / MANIFEST).write_text(
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    log.info(
        "assembled %s: %d nodes, %d edges, %d classes -> %s",
        category,
        n,
        edges.height,
        len(class_names),
        manifest["version"],
    )


def _clip_scores(work: Path, nodes: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-T title and description scores of the published nodes (nulls left out)."""
    path = _require(work / workdir.CLIP_SCORES, "CLIP-T scores (run the clip stage)")
    s = nodes.select("asin").join(
        pl.read_parquet(path), on="asin", how="left", maintain_order="left"
    )
    return (
        s["clip_t_title"].drop_nulls().cast(pl.Float64).to_numpy(),
        s["clip_t_desc"].drop_nulls().cast(pl.Float64).to_numpy(),
    )
