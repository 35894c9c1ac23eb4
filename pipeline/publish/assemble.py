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
    README.md + *.png    dataset card and plots (pipeline.publish.card, .plots)
    manifest.json        sha256 + size of every other file, counts, parameters, provenance

Node i is the same product in every file: node ids are positions in the asin-sorted node
list. The work directory is read by ``pipeline.publish.inputs``; each file is written by its
writer in ``pipeline.publish.writers``. Every file except manifest.json (its build_time) is
byte-identical across two builds of the same work directory and parameters. The folder is
written beside ``out`` and renamed into place, so a killed run never leaves a half-written
folder at ``out``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import db, workdir
from pipeline import stats as build_stats_
from pipeline.errors import UserError
from pipeline.io import read_json
from pipeline.modality import NO_TAXONOMY_REASON, TEXT_ONLY_REASON, embed_kinds, modalities
from pipeline.params import as_dict, param
from pipeline.publish import inputs
from pipeline.publish.card_data import CardData, compare_reference
from pipeline.publish.explorer import ExplorerParams, read_clip_t, write_explorer

# Each writer by name from its module: the stage's cache key covers the modules it takes
# names from (pipeline.stamps), so an edited writer reruns the stage.
from pipeline.publish.writers.card import write_card
from pipeline.publish.writers.dgl import write_dgl
from pipeline.publish.writers.edge_splits import write_edge_splits
from pipeline.publish.writers.edges import write_edges
from pipeline.publish.writers.embeddings import write_embeddings
from pipeline.publish.writers.images import stored_sizes, write_images_tar
from pipeline.publish.writers.manifest import content_version, write_manifest
from pipeline.publish.writers.node_attributes import NODE_SCHEMA, write_node_attributes
from pipeline.publish.writers.node_categories import write_node_categories
from pipeline.publish.writers.parquet import write_parquet
from pipeline.publish.writers.relations import write_relations
from pipeline.publish.writers.sessions import write_sessions
from pipeline.publish.writers.splits import write_splits
from pipeline.resources import Resources
from pipeline.reviews_select import DEFAULT_MAX_REVIEWS
from pipeline.splits import DEFAULT_RATIOS, make_splits, split_sizes
from pipeline.tasks.baselines import EMBEDDINGS, BaselineParams, folder_baselines
from pipeline.tasks.edge_splits import EdgeSplitParams

log = logging.getLogger(__name__)

MANIFEST = workdir.MANIFEST
# Re-exported for the callers that write parquet or nodes the published way (export/sqid.py,
# tests/sqid_fixtures.py) and for tests.
__all__ = [
    "NODE_SCHEMA",
    "AssembleParams",
    "assemble",
    "assemble_category",
    "content_version",
    "write_parquet",
]


@dataclass(frozen=True, kw_only=True)
class AssembleParams(EdgeSplitParams, BaselineParams):
    """The folder's settings; the link-prediction splits' and the card baselines' settings
    are this stage's too (their own dataclasses hold their defaults and help)."""

    category: str = param(help="the category's slug (its folder name)", cli=False, setting=False)
    max_reviews: int = param(DEFAULT_MAX_REVIEWS, "reviews per node (most helpful first)")
    seed: int = param(0, "seed of the node and edge splits and of the baselines' subsample")
    shard_rows: int = param(100_000, "nodes per node_attributes shard")
    split_ratios: tuple[float, ...] = param(DEFAULT_RATIOS, "train, val and test fractions")
    license: str = param("cc-by-4.0", "the dataset's license (card header)")
    build_params: dict = param(
        {}, "the build's settings, recorded in the manifest", cli=False, setting=False
    )
    reference: dict | None = param(
        None,
        "the category's SLIP Table 1 row (the registry's [reference]), shown beside the build's",
        cli=False,
        setting=False,
    )
    explorer_screenshot: bool = param(
        False,
        "also shoot explorer.html with headless Chromium into explorer.png for the card "
        "(needs chromium; the pixels depend on its build and fonts, so off by default)",
    )

    def __post_init__(self) -> None:
        if self.shard_rows < 1:
            raise UserError(f"shard_rows must be >= 1, got {self.shard_rows}")
        if len(self.split_ratios) != 3:
            raise UserError("split_ratios takes three fractions: train, val, test")
        # The tasks' settings fail here, when the build starts, not after hours of work.
        if len(self.edge_ratios) != 3:
            raise UserError("edge_ratios takes three fractions: train, val, test")
        if self.negatives < 1 or not 0.0 <= self.hard_fraction <= 1.0:
            raise UserError("negatives must be >= 1 and hard_fraction between 0 and 1")
        if self.retrieval_text not in EMBEDDINGS or not self.probe_c or min(self.probe_c) <= 0:
            raise UserError(
                f"retrieval_text must be one of {', '.join(EMBEDDINGS)} and probe_c positive"
            )


def _without(mods: tuple[str, ...], class_names: dict) -> dict[str, str]:
    """What the folder lacks and why (the card and the manifest say so): images in a
    text-only build, classes and relations without a taxonomy."""
    out = {}
    if "image" not in mods:
        out["images"] = TEXT_ONLY_REASON
    if not class_names:
        out["classes"] = NO_TAXONOMY_REASON
    return out


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def assemble(work: Path, p: AssembleParams, res: Resources = Resources()) -> dict:
    """The assemble stage: the category folder in ``work/publish/<slug>/``; returns its
    version and counts."""
    out = assemble_category(work, workdir.publish_folder(work, p.category), p, res)
    manifest = read_json(out / MANIFEST)
    return {"folder": str(out), "version": manifest["version"], **manifest["counts"]}


def assemble_category(
    work: Path, out: Path, p: AssembleParams, res: Resources = Resources()
) -> Path:
    """Write the ACMMG folder of ``p.category`` from ``work`` to ``out`` (replaced
    atomically); ``p.build_params`` are recorded in the manifest and the card. Returns
    ``out``."""
    work, out = Path(work), Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _build(work, tmp, p, res)
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


def _recorded_params(p: AssembleParams) -> dict:
    """The parameters the manifest and the card record: the build's settings and this
    stage's own (the reference is recorded beside them, the build_params are these)."""
    own = {k: v for k, v in as_dict(p).items() if k not in ("build_params", "reference")}
    return _jsonable({**p.build_params, **own})


def _build(work: Path, dest: Path, p: AssembleParams, res: Resources) -> None:
    stats = build_stats_.merged(work)
    nodes, raw_edges, node_info = inputs.load_nodes(work)
    n = nodes.height
    if n == 0:
        raise UserError(f"{work}: no nodes to publish")
    asins = nodes["asin"].to_list()
    class_names = inputs.node_category_names(work, nodes)
    edges, edge_info = inputs.edge_table(work, nodes, raw_edges)
    mods = modalities(work)  # ("text",): a text-only build, no images (pipeline/modality.py)
    with_images = "image" in mods
    images = inputs.images(work, nodes["asin"]) if with_images else inputs.no_images(nodes["asin"])
    attrs = nodes.select("asin", "node_id", "class").join(
        inputs.items(work, nodes["asin"]), on="asin", how="left", maintain_order="left"
    )
    attrs = attrs.with_columns(images["url"].alias("image_url"))
    train, val, test = make_splits(asins, seed=p.seed, ratios=tuple(p.split_ratios))
    labels = nodes["class"].to_numpy().astype(np.int64)
    src = edges["src"].to_numpy().astype(np.int64)
    dst = edges["dst"].to_numpy().astype(np.int64)

    # The data files, one writer each.
    shards, review_counts = write_node_attributes(
        dest, attrs, inputs.reviews(work), p.shard_rows, p.max_reviews, db.settings(work, res)
    )
    dims = write_embeddings(dest, inputs.embeddings(work, asins, embed_kinds(work)))
    n_images = 0
    if with_images:
        hashes = images["sha256"].to_list()
        store = [workdir.image_store_path(work, sha) for sha in hashes]
        n_images = write_images_tar(dest, asins, store, hashes)
    sessions = write_sessions(dest, work / workdir.SESSIONS, nodes)
    write_edges(dest, edges)
    write_splits(dest, asins, train, val, test)
    edge_split_counts = write_edge_splits(dest, src, dst, n, p.seed, p)
    write_node_categories(dest, class_names)
    relations = write_relations(dest, inputs.relations_json(work, edges))
    masks = {"train_mask": train, "val_mask": val, "test_mask": test}
    write_dgl(dest, n, edges, {"label": labels, **masks})
    # The standard tasks' baselines, read back from the files just written: the numbers a
    # researcher scoring the published embeddings gets.
    baselines = folder_baselines(dest, p)
    # The page to look at the data: from the files just written, before the card lists it.
    explorer = write_explorer(
        dest,
        p.category,
        clip_t=read_clip_t(work),
        p=ExplorerParams(seed=p.seed, screenshot=p.explorer_screenshot),
    )

    counts = {
        "nodes": n,
        "edges": edges.height,
        "directed_edges": 2 * edges.height,
        "classes": len(class_names),
        "images": n_images,
        **({"sessions": sessions} if sessions is not None else {}),
        "reviews": int(review_counts.sum()),
        "nodes_with_reviews": int((review_counts > 0).sum()),
        "node_attribute_shards": shards,
        "embedding_dims": dims,
        "train": int(train.sum()),
        "val": int(val.sum()),
        "test": int(test.sum()),
        "edge_splits": edge_split_counts,
    }
    if "relation_id" in edges.columns:
        counts["relations"] = int(edges["relation_id"].drop_nulls().n_unique())
    params = _recorded_params(p)
    clip_t_title, clip_t_desc = inputs.clip_scores(work, nodes)
    described = {
        "images": (
            stored_sizes(images, params.get("max_side"), params.get("jpeg_quality"))
            if with_images
            else None
        ),
        "modalities": list(mods),
        "without": _without(mods, class_names),
        "reference": compare_reference(p.reference, n, edges.height, clip_t_title, clip_t_desc),
        "tasks": {"edge_splits": edge_split_counts, "baselines": baselines},
        "clip": inputs.clip_model(work),
    }
    publish_stats = {"nodes": n, "edges": edges.height, **node_info, **edge_info}
    card_stats = _jsonable(inputs.published_stats(work, stats, publish_stats))
    # Both dumps, each with its URI, size and sha256 (ingest records them by kind).
    sources = _jsonable((stats.get("sources") or []) + (stats.get("sources_meta") or []))
    write_card(
        dest,
        CardData(
            category=p.category,
            license=p.license,
            counts=counts,
            params=params,
            build_stats=card_stats,
            sources=sources,
            class_names=[class_names[i] for i in sorted(class_names)],
            class_sizes=[
                int(c) for c in np.bincount(labels[labels >= 0], minlength=len(class_names))
            ],
            class_info=_jsonable(stats.get("classes", {})),
            degrees=np.bincount(np.concatenate([src, dst]), minlength=n),
            weights=edges["weight"].to_numpy(),
            clip_t_title=clip_t_title,
            clip_t_desc=clip_t_desc,
            titles=attrs["title"].to_list(),
            src=src,
            dst=dst,
            split_sizes=split_sizes(n, tuple(p.split_ratios)),
            node_classes=labels,
            seed=p.seed,
            relations=relations,
            edge_columns=tuple(edges.columns),
            explorer=explorer.screenshot,
            **described,
        ),
    )
    manifest = write_manifest(
        dest,
        p.category,
        counts=counts,
        params=params,
        sources=sources,
        stats=card_stats,
        **_jsonable(described),
    )
    log.info(
        "assembled %s: %d nodes, %d edges, %d classes -> %s",
        p.category,
        n,
        edges.height,
        len(class_names),
        manifest["version"],
    )
