"""The ``build-category`` flow: the declared stages (``pipeline.stages``) as Prefect tasks.

Only the Prefect wiring lives here: one task per stage (named for what it does; network stages
retry), one per shard step, the order and links between them, the run's name. What a stage
reads, writes and caches is its declaration's business (``pipeline.runner``).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from pipeline import build as build_
from pipeline import params, report, runner, workdir
from pipeline.io import write_json
from pipeline.resources import Resources
from pipeline.stages import BY_NAME, STAGES, Stage


def _stage_fn(stage_name: str, work: str, values: dict[str, Any], shards: int):
    stage = BY_NAME[stage_name]
    p = stage.make_params(values)
    result, cached = runner.run_stage(stage, Path(work), p, Resources(), shards)
    message = runner.describe(stage, result, cached)
    get_run_logger().info(message)
    # A reused stage shows as Cached in the UI, not as an ordinary completed run.
    return Completed(data=result, name="Cached", message=message) if cached else result


def _step_fn(stage_name: str, step_name: str, shard: int | None, work: str, values, shards: int):
    stage = BY_NAME[stage_name]
    step = next(s for s in stage.sharding.steps if s.name == step_name)
    p = stage.make_params(values)
    return runner.run_step(stage, step, Path(work), p, shard, shards, Resources())


def _stage_task(stage: Stage):
    """A stage as a task named for what it does; retried as a whole only where its
    declaration says so (requests retry by themselves, acmmg.retry)."""
    return task(
        _stage_fn,
        name=stage.title,
        retries=stage.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=2),
    )


STAGE_TASKS = {s.name: _stage_task(s) for s in STAGES}
STEP_TASKS = {
    (s.name, step.name): task(_step_fn, name=step.name)
    for s in STAGES
    if s.sharding is not None
    for step in s.sharding.steps
}


def _run_name() -> str:
    from prefect.runtime import flow_run

    when = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    return f"{flow_run.parameters.get('category', 'build')}-{when}"


def build_category(
    category: str,
    publish_to: str | None = None,
    work_root: str | None = None,
    overrides: dict[str, Any] | None = None,
    reviews: list[str] | None = None,
    meta: list[str] | None = None,
    device: str | None = None,
    checkpoint: str | None = None,
    verified_only: bool | None = None,
    max_items_per_user: int | None = None,
    seed: int | None = None,
    shards: int = 1,
    allow_private: list[str] | None = None,
    image_urls: list[str] | None = None,
    prefer_image_urls: bool | None = None,
    format: str | None = None,
    locale: list[str] | None = None,
) -> dict:
    # The parameters are the fields of pipeline.build.Request (plus category and shards).
    request = {k: v for k, v in locals().items() if k not in ("category", "shards")}
    b = build_.plan(category, params.build(build_.Request, _present(request)))
    with runner.work_lock(b.work, f"build of {category}"):
        return _build(b, shards)


def _build(b: build_.Build, shards: int) -> dict:
    work = str(b.work)
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}
    timings: list[dict[str, Any]] = []
    with build_.sources(b) as src:
        values = build_.stage_settings(b, src)
        previous = None
        for stage in STAGES:
            t0, started = time.monotonic(), time.time()
            p = stage.make_params(values)
            upstream = [previous] if previous is not None else []
            if runner.sharded(stage, shards) and not runner.is_cached(stage, b.work, p, shards):
                for group in runner.shard_plan(stage, shards):
                    futures = [
                        STEP_TASKS[(stage.name, c.step.name)].submit(
                            *(stage.name, c.step.name, c.shard, work, values, shards),
                            wait_for=upstream,
                        )
                        for c in group
                    ]
                    wait(futures)
                    for f in futures:
                        f.result()  # a failed shard fails the run here
                    upstream = futures
            previous = STAGE_TASKS[stage.name].submit(
                stage.name, work, values, shards, wait_for=upstream
            )
            results[stage.name] = previous.result()
            seconds[stage.name] = time.monotonic() - t0
            cached[stage.name] = previous.state.name == "Cached"
            # Kept in the work directory, not only the UI's summary: bench/bench_flow.py
            # attributes the process tree's CPU and RSS to stages by these boundaries.
            timings.append(
                {
                    "stage": stage.name,
                    "start": started,
                    "seconds": seconds[stage.name],
                    "cached": cached[stage.name],
                }
            )
            write_json(b.work / workdir.RUN_TIMINGS, {"stages": timings})
    _artifacts(b, results, cached, seconds)
    published = results["publish"]
    return {**published, **{s: results[s] for s in ("graph", "images", "filter", "classes")}}


def _artifacts(b, results: dict, cached: dict, seconds: dict) -> None:
    """The run's summary (markdown) and the card's statistics row (table) in the UI."""
    slug = b.slug.lower()
    titles = {s.name: s.title for s in STAGES}
    create_markdown_artifact(
        key=f"{slug}-summary",
        markdown=report.run_summary(b.slug, results, cached, seconds, titles, b.work),
        description=f"build-category {b.slug}: what each stage did",
    )
    create_table_artifact(
        key=f"{slug}-statistics",
        table=report.statistics_rows(b.work, b.slug),
        description=f"{b.slug}: the dataset card's statistics row",
    )


def _present(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if v is not None}


build_category.__doc__ = (
    "Build and publish one category of the registry (``acmmg categories`` lists them).\n\n"
    "Args:\n"
    "    category: the registry slug, e.g. electronics.\n"
    + params.args_doc(build_.Request)
    + "    shards: parallel tasks per sharded stage (graph partitions, image and embedding\n"
    "        shards), e.g. on a Dask cluster; the artifacts are the same as with 1.\n"
)
build_category = flow(name="build-category", flow_run_name=_run_name, log_prints=True)(
    build_category
)
