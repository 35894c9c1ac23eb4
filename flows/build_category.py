"""The ``build-category`` flow: every stage of one category, from raw dumps to a published
folder. Stages are plain functions of ``pipeline``; here they become Prefect tasks with
retries (network stages), stamps that skip unchanged work (flows.cache) and a task runner.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from flows.cache import is_cached, run_cached
from flows.sample_server import serve_sample
from pipeline import workdir
from pipeline.categories import Category, get_category
from pipeline.sample import SampleSpec

DEFAULT_PUBLISH_TO = "data/published"
DEFAULT_WORK_ROOT = "data/work"


def publish_target(publish_to: str | None) -> str:
    """Flow parameter, else $ACMMG_PUBLISH_TO, else data/published."""
    return publish_to or os.environ.get("ACMMG_PUBLISH_TO") or DEFAULT_PUBLISH_TO


def _log(name: str, cached: bool, result: Any) -> None:
    logger = get_run_logger()
    if cached:
        logger.info("%s: unchanged inputs, reusing the finished work", name)
    else:
        logger.info("%s: done %s", name, _brief(result))


def _brief(result: Any) -> str:
    if isinstance(result, dict):
        keys = [k for k, v in result.items() if isinstance(v, int | float | str)][:8]
        return ", ".join(f"{k}={result[k]}" for k in keys)
    return str(result)[:200]


@task(name="fetch-sources", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2))
def fetch_sources(uris: list[str], cache_dir: str) -> list[str]:
    """Download (or locate) the raw dumps; returns local paths."""
    from pipeline.sources.fetch import fetch

    return [str(fetch(u, Path(cache_dir)).path) for u in uris]


@task(name="ingest")
def ingest_task(
    work: str,
    reviews: list[str],
    meta: list[str],
    local: list[str],
    cache_dir: str,
    verified_only: bool,
) -> dict:
    """Ingest the sources by their URIs (recorded in the stats and the manifest); ``local``
    are the fetched copies, whose fingerprints key the stage."""
    from pipeline.ingest import ingest

    w = Path(work)
    params = {"reviews": reviews, "meta": meta, "verified_only": verified_only}
    result, cached = run_cached(
        w,
        "ingest",
        ingest,
        inputs=[Path(p) for p in local],
        outputs=[w / workdir.REVIEWS, w / workdir.ITEMS],
        params=params,
        call=lambda: ingest(
            reviews, meta, w, verified_only=verified_only, cache_dir=Path(cache_dir)
        ),
    )
    _log("ingest", cached, result)
    return result


@task(name="clean")
def clean_task(work: str) -> dict:
    from pipeline.clean import clean_items

    w = Path(work)
    result, cached = run_cached(
        w,
        "clean",
        clean_items,
        inputs=[w / workdir.ITEMS],
        outputs=[w / workdir.ITEMS_CLEAN],
        params={},
        call=lambda: clean_items(w),
    )
    _log("clean", cached, result)
    return result


def _graph_spec(
    work: Path, min_copurchase: int, k: int, max_items_per_user: int | None, partitions: int
):
    """The graph stage's function and stamp arguments; the partitioned build has its own code
    (so its own key), with the same outputs."""
    params = {"min_copurchase": min_copurchase, "k": k, "max_items_per_user": max_items_per_user}
    if partitions > 1:
        from pipeline.graph_partitions import merge_partitions as fn
    else:
        from pipeline.graph import build_graph as fn
    return fn, {
        "inputs": [work / workdir.REVIEWS, work / workdir.ITEMS_CLEAN],
        "outputs": [work / workdir.EDGES, work / workdir.NODES, work / workdir.BIPARTITE],
        "params": params,
    }


@task(name="graph")
def graph_task(
    work: str, min_copurchase: int, k: int, max_items_per_user: int | None, partitions: int = 1
) -> dict:
    """The graph stage; with ``partitions`` > 1 the sum merge of the partitions' counts."""
    w = Path(work)
    fn, spec = _graph_spec(w, min_copurchase, k, max_items_per_user, partitions)
    if partitions > 1:
        call = lambda: fn(w, partitions, min_copurchase, k)  # noqa: E731
    else:
        call = lambda: fn(w, **spec["params"])  # noqa: E731
    result, cached = run_cached(w, "graph", fn, **spec, call=call)
    _log("graph", cached, result)
    return result


@task(name="graph-prepare")
def graph_prepare_task(
    work: str, partitions: int, min_copurchase: int, max_items_per_user: int | None
) -> dict:
    """Baskets, pruning and the bipartite table; the kept baskets split by user hash."""
    from pipeline.graph_partitions import PREP, partition_dir, prepare_partitions

    w = Path(work)
    params = {"min_copurchase": min_copurchase, "max_items_per_user": max_items_per_user}
    result, cached = run_cached(
        w,
        f"graph-prepare-{partitions:03d}",
        prepare_partitions,
        inputs=[w / workdir.REVIEWS, w / workdir.ITEMS_CLEAN],
        outputs=[partition_dir(w, partitions) / PREP, w / workdir.BIPARTITE],
        params=params,
        call=lambda: prepare_partitions(w, partitions, **params),
    )
    _log("graph-prepare", cached, result)
    return result


@task(name="graph-partition")
def graph_partition_task(work: str, part: int, partitions: int) -> dict:
    """One user partition's partial pair counts (may run on another machine of a Dask
    cluster that shares the work directory's filesystem)."""
    from pipeline.graph_partitions import baskets_file, pairs_dir, project_partition

    w = Path(work)
    result, _ = run_cached(
        w,
        f"graph-partition-{part:03d}-of-{partitions:03d}",
        project_partition,
        inputs=[baskets_file(w, part, partitions)],
        outputs=[pairs_dir(w, part, partitions)],
        params={},
        call=lambda: project_partition(w, part, partitions),
    )
    return result


@task(name="graph-merge-bucket")
def graph_merge_bucket_task(work: str, bucket: int, partitions: int) -> dict:
    """One bucket of pairs summed over the partitions, thresholded."""
    from pipeline.graph_partitions import PREP, kept_file, merge_bucket, pairs_dir, partition_dir

    w = Path(work)
    inputs = [partition_dir(w, partitions) / PREP]
    inputs += [pairs_dir(w, p, partitions) / f"bucket={bucket}" for p in range(partitions)]
    result, _ = run_cached(
        w,
        f"graph-merge-{bucket:03d}-of-{partitions:03d}",
        merge_bucket,
        inputs=inputs,
        outputs=[kept_file(w, bucket, partitions)],
        params={},
        call=lambda: merge_bucket(w, bucket, partitions),
    )
    return result


def _images_spec(work: Path, allow_private: list[str]):
    from pipeline.images import ImageConfig, fetch_images

    config = ImageConfig(allow_private=tuple(allow_private))
    return (
        fetch_images,
        config,
        {
            "inputs": [work / workdir.NODES, work / workdir.ITEMS_CLEAN],
            "outputs": [work / workdir.IMAGES],
            "params": {"config": config.fingerprint()},
        },
    )


@task(name="images", retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5))
def images_task(work: str, allow_private: list[str]) -> dict:
    w = Path(work)
    fetch_images, config, spec = _images_spec(w, allow_private)
    result, cached = run_cached(
        w, "images", fetch_images, **spec, call=lambda: fetch_images(w, config=config)
    )
    _log("images", cached, result)
    return result


@task(name="images-shard", retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5))
def images_shard_task(work: str, shard: int, shards: int, allow_private: list[str]) -> str:
    """Fetch one hash shard of the candidates in a work directory of its own (it may run
    on another machine of a Dask cluster that shares the work directory's filesystem)."""
    import polars as pl

    w = Path(work)
    fetch_images, config, _ = _images_spec(w, allow_private)
    sub = w / "shards" / f"images-{shard:03d}-of-{shards:03d}"
    sub.mkdir(parents=True, exist_ok=True)
    nodes = pl.read_parquet(w / workdir.NODES)
    mine = nodes.filter(pl.col("asin").hash(seed=0) % shards == shard)
    mine.write_parquet(sub / workdir.NODES)
    (sub / workdir.ITEMS_CLEAN).unlink(missing_ok=True)
    (sub / workdir.ITEMS_CLEAN).symlink_to((w / workdir.ITEMS_CLEAN).resolve())
    fetch_images(sub, config=config)
    return str(sub)


@task(name="images-merge")
def images_merge_task(work: str, shard_dirs: list[str]) -> int:
    """Fold the shards' journals and stored JPEGs into the work directory; the images task
    then finds every item done and only finalises (placeholders are judged over all shards)."""
    import shutil

    from pipeline.images.stage import JOURNAL_DIR, Journal

    w = Path(work)
    journal = Journal(w / JOURNAL_DIR)
    rows = 0
    for d in map(Path, shard_dirs):
        part = Journal(d / JOURNAL_DIR).latest()
        journal.append_frame(part)
        rows += part.height
        for f in sorted((d / workdir.IMAGE_STORE).rglob("*.jpg")):
            dest = w / workdir.IMAGE_STORE / f.relative_to(d / workdir.IMAGE_STORE)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
    return rows


def _embed_spec(work: Path, model: str, pretrained: str, checkpoint: str | None, device: str):
    from pipeline.clip import embed_work

    params = {
        "model": model,
        "pretrained": pretrained or None,
        "checkpoint": checkpoint,
        "device": device,
    }
    return (
        embed_work,
        params,
        {
            "inputs": [work / workdir.IMAGES, work / workdir.NODES, work / workdir.ITEMS_CLEAN],
            "outputs": [work / workdir.CLIP_DIR / "scores.parquet"],
            "params": params,
        },
    )


@task(name="embed")
def embed_task(work: str, model: str, pretrained: str, checkpoint: str | None, device: str) -> dict:
    w = Path(work)
    embed_work, params, spec = _embed_spec(w, model, pretrained, checkpoint, device)
    result, cached = run_cached(
        w, "embed", embed_work, **spec, call=lambda: embed_work(w, **params)
    )
    _log("embed", cached, result)
    return result


@task(name="embed-shard")
def embed_shard_task(
    work: str,
    shard: int,
    shards: int,
    model: str,
    pretrained: str,
    checkpoint: str | None,
    device: str,
) -> dict:
    """Embed the parts i mod n of the candidates (the embed task then assembles them)."""
    w = Path(work)
    embed_work, params, _ = _embed_spec(w, model, pretrained, checkpoint, device)
    return embed_work(w, **params, shard=(shard, shards))


@task(name="filter")
def filter_task(
    work: str,
    k: int,
    min_copurchase: int,
    min_clip_t: float | None,
    clip_t_percentile: float | None,
) -> dict:
    from pipeline.filter import filter_fixpoint

    w = Path(work)
    params = {
        "k": k,
        "min_copurchase": min_copurchase,
        "min_clip_t": min_clip_t,
        "clip_t_percentile": clip_t_percentile,
    }
    result, cached = run_cached(
        w,
        "filter",
        filter_fixpoint,
        inputs=[w / workdir.EDGES, w / workdir.IMAGES, w / workdir.CLIP_DIR / "scores.parquet"],
        outputs=[w / workdir.FINAL_DIR / "nodes.parquet", w / workdir.FINAL_DIR / "edges.parquet"],
        params=params,
        call=lambda: filter_fixpoint(w, **params),
    )
    _log("filter", cached, result)
    return result


@task(name="classes")
def classes_task(work: str, level: int | str, k: int) -> dict:
    from pipeline.classes import choose_classes

    w = Path(work)
    lvl = None if level in (None, "auto") else int(level)
    result, cached = run_cached(
        w,
        "classes",
        choose_classes,
        inputs=[w / workdir.FINAL_DIR / "nodes.parquet", w / workdir.ITEMS_CLEAN],
        outputs=[w / workdir.CLASSES, w / workdir.NODE_CATEGORIES],
        params={"level": lvl, "k": k},
        call=lambda: choose_classes(w, level=lvl, k=k),
    )
    _log("classes", cached, result)
    return result


@task(name="relations")
def relations_task(work: str, k: int, seed: int) -> dict:
    from pipeline.relations import build_relations

    w = Path(work)
    result, cached = run_cached(
        w,
        "relations",
        build_relations,
        inputs=[
            w / workdir.BIPARTITE,
            w / workdir.FINAL_DIR / "edges.parquet",
            w / workdir.CLASSES,
        ],
        outputs=[w / workdir.RELATIONS_DIR / "edge_relations.parquet"],
        params={"k": k, "seed": seed},
        call=lambda: build_relations(w, k=k, seed=seed),
    )
    _log("relations", cached, result)
    return result


@task(name="assemble")
def assemble_task(work: str, category: str, params: dict, max_reviews: int, seed: int) -> str:
    from pipeline.publish.assemble import assemble_category

    w = Path(work)
    out = w / "publish" / category
    inputs = [
        w / f
        for f in (
            workdir.ITEMS_CLEAN,
            workdir.REVIEWS,
            workdir.IMAGES,
            workdir.CLASSES,
            workdir.NODE_CATEGORIES,
            workdir.STATS,
        )
    ]
    inputs += [w / workdir.FINAL_DIR, w / workdir.CLIP_DIR, w / workdir.RELATIONS_DIR]
    result, cached = run_cached(
        w,
        "assemble",
        assemble_category,
        inputs=inputs,
        outputs=[out / "manifest.json"],
        params={"category": category, "params": params, "max_reviews": max_reviews, "seed": seed},
        call=lambda: str(
            assemble_category(w, out, category, params=params, max_reviews=max_reviews, seed=seed)
        ),
    )
    _log("assemble", cached, result)
    return str(out)


@task(name="publish", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2))
def publish_task(folder: str, category: str, target: str) -> str:
    from pipeline.publish.targets import publish_folder

    version = publish_folder(Path(folder), category, target)
    get_run_logger().info("published %s version %s to %s", category, version, target)
    return version


def _graph(work: Path, settings: dict, max_items_per_user: int | None, shards: int) -> dict:
    """The graph stage; with shards: prepare, the user partitions in parallel, the buckets
    of pairs in parallel, then the k-core and the writes (pipeline.graph_partitions)."""
    w, min_copurchase, k = str(work), settings["min_copurchase"], settings["k"]
    if shards > 1:
        fn, spec = _graph_spec(work, min_copurchase, k, max_items_per_user, shards)
        if not is_cached(work, "graph", fn, **spec):
            graph_prepare_task(w, shards, min_copurchase, max_items_per_user)
            _fan_out(graph_partition_task, w, shards)
            _fan_out(graph_merge_bucket_task, w, shards)
    return graph_task(w, min_copurchase, k, max_items_per_user, shards)


def _fan_out(shard_task, work: str, shards: int, *args: Any) -> list:
    """Submit ``shard_task(work, i, shards, *args)`` for every shard i to the flow's task
    runner at once; their results, in shard order, once all are done."""
    futures = [shard_task.submit(work, i, shards, *args) for i in range(shards)]
    return [f.result() for f in futures]


@contextlib.contextmanager
def _sources(cat: Category, work: Path, reviews: list[str] | None, meta: list[str] | None):
    """The category's source URIs; for a sample category, generated and served locally."""
    if reviews:
        yield reviews, meta or [], []
        return
    if cat.source == "sample":
        spec = SampleSpec(category=cat.file, n_items=cat.sample_items, n_users=cat.sample_users)
        with serve_sample(work / "sample", spec) as base:
            yield (
                [cat.reviews.replace("sample://", f"{base}/")],
                [cat.meta.replace("sample://", f"{base}/")],
                ["127.0.0.1/32"],
            )
        return
    yield [cat.reviews], [cat.meta], []


@flow(name="build-category", log_prints=True)
def build_category(
    category: str,
    publish_to: str | None = None,
    work_root: str | None = None,
    overrides: dict[str, Any] | None = None,
    reviews: list[str] | None = None,
    meta: list[str] | None = None,
    device: str = "auto",
    checkpoint: str | None = None,
    verified_only: bool = False,
    max_items_per_user: int | None = None,
    seed: int = 0,
    shards: int = 1,
    allow_private: list[str] | None = None,
) -> dict:
    """Build and publish one category of the registry (``acmmg categories`` lists them).

    ``publish_to`` overrides $ACMMG_PUBLISH_TO, which overrides data/published;
    ``overrides`` replaces registry settings (taxonomy_level, min_copurchase, k, min_clip_t,
    clip_t_percentile, model, pretrained, relations_k, max_reviews); ``reviews``/``meta``
    replace the registry's source URLs. ``shards`` > 1 runs the sharded stages (the projection
    by user-hash partition, image fetch, embeddings) as that many parallel tasks each on the
    flow's task runner, e.g. a Dask cluster; the artifacts are the same as with 1.
    ``allow_private`` lists networks (CIDR) the image stage may fetch from although they are
    not public (a sample category served on 127.0.0.1 allows that address itself).
    """
    cat = get_category(category)
    settings = {**cat.settings(), **(overrides or {})}
    target = publish_target(publish_to)
    work = Path(work_root or os.environ.get("ACMMG_WORK_ROOT") or DEFAULT_WORK_ROOT) / category
    work.mkdir(parents=True, exist_ok=True)
    w = str(work)
    with _sources(cat, work, reviews, meta) as (review_uris, meta_uris, private):
        allow_private = sorted(set(private) | set(allow_private or []))
        cache_dir = str(work / "downloads")
        review_paths = fetch_sources(review_uris, cache_dir)
        meta_paths = fetch_sources(meta_uris, cache_dir) if meta_uris else []
        ingest_task(w, review_uris, meta_uris, review_paths + meta_paths, cache_dir, verified_only)
        clean_task(w)
        graph = _graph(work, settings, max_items_per_user, shards)
        if shards > 1:
            fetch_images, _, spec = _images_spec(work, allow_private)
            if not is_cached(work, "images", fetch_images, **spec):
                images_merge_task(w, _fan_out(images_shard_task, w, shards, allow_private))
        images = images_task(w, allow_private)
    embed_args = (settings["model"], settings["pretrained"], checkpoint, device)
    if shards > 1:
        embed_work, _, spec = _embed_spec(work, *embed_args)
        if not is_cached(work, "embed", embed_work, **spec):
            _fan_out(embed_shard_task, w, shards, *embed_args)
    embed_task(w, *embed_args)
    final = filter_task(
        w,
        settings["k"],
        settings["min_copurchase"],
        settings["min_clip_t"],
        settings["clip_t_percentile"],
    )
    classes = classes_task(w, settings["taxonomy_level"], settings["k"])
    relations = relations_task(w, settings["relations_k"], seed)
    params = {
        **settings,
        "category": category,
        "verified_only": verified_only,
        "max_items_per_user": max_items_per_user,
        "seed": seed,
        "sources": {"reviews": review_uris, "meta": meta_uris},
    }
    folder = assemble_task(w, category, params, settings["max_reviews"], seed)
    version = publish_task(folder, category, target)
    return {
        "category": category,
        "version": version,
        "target": target,
        "graph": graph,
        "images": images,
        "final": final,
        "classes": classes,
        "relations": relations,
    }
