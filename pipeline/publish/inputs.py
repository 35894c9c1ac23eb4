"""What the assemble stage reads from a build's work directory, checked for consistency.

Every reader names the stage to rerun when its file is missing or stale, and returns rows in
node order (node ids are positions in the asin-sorted list of the final nodes that have a
class).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import stats as build_stats
from pipeline import workdir
from pipeline.errors import UserError
from pipeline.io import read_json

log = logging.getLogger(__name__)

EMBEDDING_KINDS = workdir.CLIP_KINDS
_SAFE_ASIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_require = workdir.require


def load_nodes(work: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
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
    stats = build_stats.merged(work)
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


def edge_table(work: Path, nodes: pl.DataFrame, edges: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Published edges: src < dst node ids, one row per undirected edge, sorted, with the
    relations stage's relation_id and relation_users when it ran."""
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
        rel, rel_cols = _edge_relations(rel_path)
        e = e.join(rel, on=["lo_asin", "hi_asin"], how="left")
        info["edges_without_relation"] = e["relation_id"].null_count()
        cols += rel_cols
    if outside:
        log.info("assemble: %d edges touch nodes outside the published node set", outside)
    return e.select(cols).sort("src", "dst"), info


# The relations stage's per-edge columns, in their published order and types; the
# distribution (relation_ids / relation_shares, top first) only where the stage wrote it.
_RELATION_COLUMNS = {
    "relation_id": pl.Int64,
    "relation_ids": pl.List(pl.Int64),
    "relation_shares": pl.List(pl.Float64),
    "relation_users": pl.Int64,
}


def _edge_relations(path: Path) -> tuple[pl.DataFrame, list[str]]:
    """(lo_asin, hi_asin, relation columns) of every edge, and the relation columns."""
    present = set(pl.read_parquet_schema(path))
    cols = [c for c in _RELATION_COLUMNS if c in present]
    if "relation_id" not in cols:
        raise UserError(f"{path} has no relation_id column: rerun the relations stage")
    rel = pl.read_parquet(path, columns=["src_asin", "dst_asin", *cols])
    rel = rel.select(
        pl.min_horizontal("src_asin", "dst_asin").alias("lo_asin"),
        pl.max_horizontal("src_asin", "dst_asin").alias("hi_asin"),
        *(pl.col(c).cast(_RELATION_COLUMNS[c]) for c in cols),
    ).unique(subset=["lo_asin", "hi_asin"], keep="first", maintain_order=True)
    return rel, cols


def items(work: Path, asins: pl.Series) -> pl.DataFrame:
    """asin, title, desc (list; [] when missing) of every node, in ``asins`` order."""
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


def embeddings(
    work: Path, asins: list[str], kinds: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """{kind: float32 [N, d]}, row i = node i (the CLIP index maps asins to rows); ``kinds``
    default all (a text-only build has no image kind)."""
    index = pl.read_parquet(_require(work / workdir.CLIP_INDEX, "CLIP index (run the clip stage)"))
    pos = dict(zip(index["asin"].to_list(), index["row"].to_list(), strict=True))
    missing = [a for a in asins if a not in pos]
    if missing:
        raise UserError(f"{len(missing)} nodes have no CLIP embedding, e.g. {missing[:3]}")
    rows = np.asarray([pos[a] for a in asins], dtype=np.int64)
    out = {}
    for kind in kinds or EMBEDDING_KINDS:
        path = _require(work / workdir.clip_array(kind), f"{kind} embeddings")
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or (rows.size and rows.max() >= arr.shape[0]):
            raise UserError(f"{path}: shape {arr.shape} does not match the index")
        out[kind] = np.ascontiguousarray(arr[rows], dtype=np.float32)
    return out


def no_images(asins: pl.Series) -> pl.DataFrame:
    """The columns of :func:`images` with no image for any node (a text-only build)."""
    schema = {"asin": pl.String, "sha256": pl.String, "url": pl.String}
    schema |= {c: pl.Int64 for c in ("width", "height", "orig_width", "orig_height")}
    return pl.DataFrame({"asin": asins}).with_columns(
        pl.lit(None, t).alias(c) for c, t in schema.items() if c != "asin"
    )


def images(work: Path, asins: pl.Series) -> pl.DataFrame:
    """Every node's stored image (its status-ok row), in node order: asin, sha256, url (the
    item's image URL), width and height (stored) and orig_width, orig_height (the source's;
    null in tables written before the images stage recorded them)."""
    path = _require(work / workdir.IMAGES, "image table (run the images stage)")
    img = pl.read_parquet(path)
    usable = img.filter(pl.col("sha256").is_not_null())
    if "status" in img.columns:
        usable = usable.filter(pl.col("status") == "ok")
    cols = ["url", "width", "height", "orig_width", "orig_height"]
    usable = usable.with_columns(
        pl.lit(None).alias(c) for c in cols if c not in usable.columns
    ).with_columns(pl.col("url").cast(pl.String), *(pl.col(c).cast(pl.Int64) for c in cols[1:]))
    usable = (
        usable.select("asin", "sha256", *cols).sort("asin", "sha256").unique("asin", keep="first")
    )
    table = pl.DataFrame({"asin": asins}).join(usable, on="asin", how="left", maintain_order="left")
    missing = table.filter(pl.col("sha256").is_null())["asin"].to_list()
    if missing:
        raise UserError(f"{len(missing)} nodes have no stored image, e.g. {missing[:3]}")
    return table


def node_category_names(work: Path, nodes: pl.DataFrame) -> dict[int, str]:
    """{class index: name}, checked against the class names in classes.parquet."""
    path = _require(work / workdir.NODE_CATEGORIES, "node_categories.json (run the classes stage)")
    mapping = {int(k): str(v) for k, v in read_json(path).items()}
    pairs = nodes.select("class", "class_name").unique()
    for c, name in pairs.iter_rows():
        if mapping.get(c) != name:
            raise UserError(
                f"{path} maps class {c} to {mapping.get(c)!r}, classes.parquet to {name!r}"
            )
    return dict(sorted(mapping.items()))


def relations_json(work: Path, edges: pl.DataFrame) -> Path | None:
    """The relations stage's relations.json when the edges carry its relations."""
    path = work / workdir.RELATIONS_JSON
    return path if "relation_id" in edges.columns and path.exists() else None


def clip_scores(work: Path, nodes: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-T title and description scores of the published nodes (nulls left out)."""
    path = _require(work / workdir.CLIP_SCORES, "CLIP-T scores (run the clip stage)")
    s = nodes.select("asin").join(
        pl.read_parquet(path), on="asin", how="left", maintain_order="left"
    )
    return (
        s["clip_t_title"].drop_nulls().cast(pl.Float64).to_numpy(),
        s["clip_t_desc"].drop_nulls().cast(pl.Float64).to_numpy(),
    )


def clip_model(work: Path) -> dict | None:
    """The ``model`` object of the embed stage's clip/meta.json (architecture, pretrained tag
    or checkpoint sha256, random-weights seed, precision, ...): what an export needs to embed
    new text in the same space."""
    path = work / workdir.CLIP_META
    return read_json(path).get("model") if path.exists() else None


def reviews(work: Path) -> Path:
    return _require(work / workdir.REVIEWS, "reviews (run the ingest stage)")


def published_stats(work: Path, stats: dict, publish_stats: dict) -> dict:
    """The stats the manifest and the card show: every stage's but the sources, the filter's
    from its own file when the stage record lacks it, and the assembly's own counts."""
    out = {k: v for k, v in stats.items() if k != "sources"}
    filter_stats = work / workdir.FILTER_STATS
    if "filter" not in out and filter_stats.exists():
        out["filter"] = read_json(filter_stats)
    out["publish"] = publish_stats
    return out
