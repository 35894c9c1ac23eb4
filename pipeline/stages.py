"""The pipeline's shape, written once: one declaration per stage.

A stage is a plain function ``fn(work, params, res) -> stats`` of a work directory
(``pipeline.workdir``), a frozen parameter dataclass whose fields carry their defaults and
help (``pipeline.params``) and the resources it may use (``pipeline.resources``). Its
declaration here says everything a runner needs: the files it reads and writes (names from
``pipeline.workdir``), where its stats go, whether it touches the network (a flow retries
it), whether it is cached, and how it shards. The Prefect flow (``flows/build_category.py``)
and the in-process runner (``pipeline.runner``) are both loops over ``STAGES``; the stage
table (``acmmg stages``, docs/architecture.md) is generated from it.

Adding a stage: write its function and parameter dataclass in a module of its own, add one
``Stage(...)`` below and put it in ``STAGES`` where it belongs (docs/architecture.md has a
worked example).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import stats as stats_
from pipeline import workdir
from pipeline.classes import ClassesParams, choose_classes
from pipeline.clean import CleanParams, clean_items
from pipeline.clip.params import EmbedParams
from pipeline.clip.stage import embed_shard, embed_work
from pipeline.filter import FilterParams, filter_fixpoint
from pipeline.graph import GraphParams, build_graph
from pipeline.graph_partitions import (
    PREP,
    baskets_file,
    kept_file,
    merge_bucket,
    merge_partitions,
    pairs_dir,
    prepare_partitions,
    project_partition,
)
from pipeline.images.config import ImageConfig
from pipeline.images.shards import fetch_shard, merge_shards
from pipeline.images.stage import images_stage
from pipeline.ingest import IngestParams, ingest
from pipeline.modality import embed_kinds
from pipeline.params import build, convert, fields, hints
from pipeline.publish.assemble import AssembleParams, assemble
from pipeline.publish.card import templates_sha256
from pipeline.publish.stage import PublishParams, publish
from pipeline.relations import RelationsParams, build_relations, relation_inputs
from pipeline.relations.stage import relation_outputs
from pipeline.sources.stage import FetchParams, fetch_sources, load_sources, source_files

Paths = Callable[[Path, Any], list[Path]]
ShardPaths = Callable[[Path, Any, int, int], list[Path]]


@dataclass(frozen=True)
class ShardStep:
    """One step of a sharded stage. ``each``: ``fn(work, params, shard, shards, res)`` runs
    once per shard, independently (a runner may spread them over machines); otherwise
    ``fn(work, params, shards, res)`` runs once. A step with ``inputs``/``outputs`` is
    stamped like a stage (a killed run resumes after it); one without resumes by itself."""

    name: str
    fn: Callable[..., Any]
    each: bool = True
    inputs: ShardPaths | None = None
    outputs: ShardPaths | None = None
    doc: str = ""


@dataclass(frozen=True)
class Sharding:
    """How a stage splits for a cluster: its steps, in order, then the stage itself (or
    ``finish(work, params, shards, res)`` in its place). The artifacts are those of the
    unsharded stage, byte for byte."""

    how: str
    steps: tuple[ShardStep, ...]
    finish: Callable[..., Any] | None = None


def _key(p: Any) -> dict:
    """The parameters that make up a stage's cache key: every field not marked key=False."""
    out = {}
    for f in fields(p):
        if f.metadata.get("key", True):
            v = getattr(p, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


@dataclass(frozen=True)
class Stage:
    name: str
    title: str  # what the step does, as a task name
    fn: Callable[..., Any]
    params: type
    inputs: Paths
    outputs: Paths
    stats: str | None = None  # its stats: "" = at the top level, a name = under that key
    network: bool = False  # talks to the network (its requests retry by pipeline.http's rules)
    retries: int = 0  # times a flow retries the whole stage (only where nothing finer does)
    cached: bool = True  # False: always runs (it revalidates its own work cheaply)
    sharding: Sharding | None = None
    key: Callable[[Any], dict] = _key
    doc: str = ""

    def make_params(self, settings: dict[str, Any]) -> Any:
        """This stage's parameters from the build's flat settings (unset fields keep their
        defaults; values are converted to the field types)."""
        names = {f.name for f in fields(self.params)}
        return build(self.params, {k: v for k, v in settings.items() if k in names})


# ----------------------------------------------------------------------------- file sets


def _w(*names: str) -> Paths:
    return lambda work, p: [Path(work) / n for n in names]


def _items(work: Path) -> list[Path]:
    return workdir.items_inputs(work)


def _final(work: Path) -> list[Path]:
    return list(workdir.final_graph(work))


def _ingest_outputs(work: Path, p: IngestParams) -> list[Path]:
    work = Path(work)
    out = [work / workdir.REVIEWS, work / workdir.REJECTS]
    if (work / workdir.SOURCES).exists() and load_sources(work)["meta"]:
        out.append(work / workdir.ITEMS)
    if (work / workdir.SESSIONS).exists():  # Amazon-M2 sessions: their ordered list
        out.append(work / workdir.SESSIONS)
    return out


def _graph_inputs(work: Path, p: GraphParams) -> list[Path]:
    work = Path(work)
    clean = work / workdir.ITEMS_CLEAN
    return [work / workdir.REVIEWS] + ([clean] if clean.exists() else [])


def _assemble_inputs(work: Path, p: AssembleParams) -> list[Path]:
    work = Path(work)
    files = [workdir.REVIEWS, workdir.IMAGES, workdir.CLASSES, workdir.NODE_CATEGORIES]
    if (work / workdir.SESSIONS).exists():  # Amazon-M2: published as sessions.parquet
        files.append(workdir.SESSIONS)
    folders = [workdir.FINAL_DIR, workdir.CLIP_DIR, workdir.RELATIONS_DIR, workdir.STATS_DIR]
    return _items(work) + [work / f for f in files + folders]


def _clip_outputs(work: Path, p: EmbedParams) -> list[Path]:
    names = [workdir.CLIP_INDEX, workdir.CLIP_SCORES, workdir.CLIP_META]
    return [Path(work) / n for n in names + [workdir.clip_array(k) for k in embed_kinds(work)]]


# ----------------------------------------------------------------------------- the stages

FETCH = Stage(
    name="fetch",
    title="fetch sources",
    fn=fetch_sources,
    params=FetchParams,
    inputs=lambda work, p: [],
    outputs=_w(workdir.SOURCES),
    network=True,
    cached=False,
    doc="a complete local copy of every dump (downloads resume; sha256 recorded)",
)

INGEST = Stage(
    name="ingest",
    title="ingest",
    fn=ingest,
    params=IngestParams,
    inputs=lambda work, p: source_files(work),
    outputs=_ingest_outputs,
    stats="",
    doc="canonical reviews and items tables; bad lines counted by reason",
)

CLEAN = Stage(
    name="clean",
    title="clean items",
    fn=clean_items,
    params=CleanParams,
    inputs=_w(workdir.ITEMS),
    outputs=_w(workdir.ITEMS_CLEAN, workdir.ITEM_REJECTS),
    stats="clean",
    doc="items without a usable title, description or image URL dropped, with the reason",
)


def _partition_dir_step(work: Path, p: GraphParams, i: int, n: int) -> list[Path]:
    return [workdir.graph_partition_dir(work, n) / PREP]


GRAPH = Stage(
    name="graph",
    title="graph",
    fn=build_graph,
    params=GraphParams,
    inputs=_graph_inputs,
    outputs=_w(workdir.EDGES, workdir.NODES, workdir.BIPARTITE),
    stats="",
    doc="bipartite purchases -> item pairs bought by >= min_copurchase users -> k-core",
    sharding=Sharding(
        how="projection by user-hash partition, then a sum merge by item bucket",
        steps=(
            ShardStep(
                "graph-prepare",
                prepare_partitions,
                each=False,
                inputs=lambda work, p, i, n: _graph_inputs(work, p),
                outputs=lambda work, p, i, n: (
                    _partition_dir_step(work, p, i, n) + [Path(work) / workdir.BIPARTITE]
                ),
                doc="baskets, pruning and bipartite.parquet; baskets split by user hash",
            ),
            ShardStep(
                "graph-partition",
                project_partition,
                inputs=lambda work, p, i, n: [baskets_file(work, i, n)],
                outputs=lambda work, p, i, n: [pairs_dir(work, i, n)],
                doc="one partition's partial pair counts, bucketed by item",
            ),
            ShardStep(
                "graph-merge-bucket",
                merge_bucket,
                inputs=lambda work, p, i, n: (
                    _partition_dir_step(work, p, i, n)
                    + [pairs_dir(work, q, n) / f"bucket={i}" for q in range(n)]
                ),
                outputs=lambda work, p, i, n: [kept_file(work, i, n)],
                doc="one bucket summed over the partitions, thresholded",
            ),
        ),
        finish=merge_partitions,
    ),
)

IMAGES = Stage(
    name="images",
    title="fetch images",
    fn=images_stage,
    params=ImageConfig,
    inputs=lambda work, p: [Path(work) / workdir.NODES] + _items(work),
    outputs=_w(workdir.IMAGES),
    stats="images",
    network=True,
    key=lambda cfg: {"config": cfg.fingerprint()},
    doc="each candidate's best image, verified and normalised to an RGB JPEG; placeholders",
    sharding=Sharding(
        how="candidates by asin hash, each shard in a work directory of its own",
        steps=(
            ShardStep("images-shard", fetch_shard, doc="one hash shard's images"),
            ShardStep(
                "images-merge", merge_shards, each=False, doc="the shards' journals and files"
            ),
        ),
    ),
)

EMBED = Stage(
    name="embed",
    title="embed (CLIP)",
    fn=embed_work,
    params=EmbedParams,
    inputs=lambda work, p: [Path(work) / workdir.IMAGES, Path(work) / workdir.NODES] + _items(work),
    outputs=_clip_outputs,
    stats="clip",
    doc="image, title, description and combined CLIP embeddings; CLIP-T scores",
    sharding=Sharding(
        how="the fixed 4,096-row parts, i mod shards",
        steps=(ShardStep("embed-shard", embed_shard, doc="one shard's parts"),),
    ),
)

FILTER = Stage(
    name="filter",
    title="quality filter",
    fn=filter_fixpoint,
    params=FilterParams,
    inputs=lambda work, p: (
        [
            Path(work) / n
            for n in (workdir.EDGES, workdir.IMAGES, workdir.CLIP_INDEX, workdir.CLIP_SCORES)
        ]
        + _items(work)
    ),
    outputs=_w(
        workdir.FINAL_NODES, workdir.FINAL_EDGES, workdir.FINAL_REMOVED, workdir.FILTER_STATS
    ),
    stats="filter",
    doc="drop nodes with a bad image or low CLIP-T, recompute the k-core, until stable",
)

CLASSES = Stage(
    name="classes",
    title="classes",
    fn=choose_classes,
    params=ClassesParams,
    inputs=lambda work, p: _final(work) + _items(work),
    outputs=_w(workdir.CLASSES, workdir.NODE_CATEGORIES),
    stats="classes",
    doc="class label = one taxonomy level: pinned, or the most diverse balanced one",
)

RELATIONS = Stage(
    name="relations",
    title="relations (RCML)",
    fn=build_relations,
    params=RelationsParams,
    inputs=lambda work, p: list(relation_inputs(work).values()),
    outputs=lambda work, p: relation_outputs(work),
    stats="relations",
    doc="users clustered by the subcategories of all they buy; one relation text per cluster; "
    "per-edge relation distributions",
)

ASSEMBLE = Stage(
    name="assemble",
    title="assemble",
    fn=assemble,
    params=AssembleParams,
    inputs=_assemble_inputs,
    outputs=lambda work, p: [workdir.publish_folder(work, p.category) / workdir.MANIFEST],
    key=lambda p: {**_key(p), "templates": templates_sha256()},
    doc="the ACMMG folder: parquet, DGL, tar, embeddings, card, manifest",
)

PUBLISH = Stage(
    name="publish",
    title="publish",
    fn=publish,
    params=PublishParams,
    inputs=lambda work, p: [workdir.publish_folder(work, p.category) / workdir.MANIFEST],
    outputs=lambda work, p: [],
    network=True,
    retries=2,  # an upload interrupted half way resumes (files already there are verified)
    cached=False,
    doc="atomically to a directory, fsspec URL or the Hub; an unchanged version uploads nothing",
)

STAGES: tuple[Stage, ...] = (
    FETCH,
    INGEST,
    CLEAN,
    GRAPH,
    IMAGES,
    EMBED,
    FILTER,
    CLASSES,
    RELATIONS,
    ASSEMBLE,
    PUBLISH,
)
BY_NAME = {s.name: s for s in STAGES}


# ----------------------------------------------------------------------------- settings


def setting_types() -> dict[str, Any]:
    """Every stage parameter by name, with its type: the settings a build takes. A name used
    by several stages means the same thing in each (checked by the tests)."""
    out: dict[str, Any] = {}
    for stage in STAGES:
        types_ = hints(stage.params)
        for f in fields(stage.params):
            if f.metadata.get("setting", True):
                out.setdefault(f.name, types_[f.name])
    return out


def setting_defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stage in STAGES:
        for f in fields(stage.params):
            if f.default is not dataclasses.MISSING:
                out.setdefault(f.name, f.default)
    return out


def check_settings(values: dict[str, Any], source: str = "setting") -> dict[str, Any]:
    """``values`` converted to the settings' types; an unknown name or a bad value is a
    ParamError naming it (and the valid names)."""
    return convert(setting_types(), values, source)


def record_stats(work: Path, stage: Stage, result: Any) -> None:
    """Write what ``stage`` returned as its stats fragment (when it records any)."""
    if stage.stats is not None:
        stats_.record(work, stage.name, stage.stats, result)
