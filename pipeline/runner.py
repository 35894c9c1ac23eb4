"""Running declared stages: stamps, stats, shard steps. The in-process runner is here; the
Prefect flow (flows/build_category.py) uses the same pieces, one task per piece.

A stage runs unless its stamp matches (same parameters, code and input fingerprints, and its
outputs exist); then its stats fragment is written and its stamp last, so a run killed at any
point reruns only the stage it was in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import stamps, workdir
from pipeline.errors import UserError
from pipeline.resources import Resources
from pipeline.stages import STAGES, ShardStep, Stage, record_stats

log = logging.getLogger(__name__)


def outputs(stage: Stage, work: Path, p: Any) -> list[Path]:
    """The stage's declared outputs and, when it records stats, its stats file."""
    out = list(stage.outputs(work, p))
    if stage.stats is not None:
        out.append(workdir.stats_file(work, stage.name))
    return out


def code(stage: Stage, shards: int) -> Callable[..., Any]:
    """The function that does the stage's work (its cache key hashes this function's code)."""
    if shards > 1 and stage.sharding is not None and stage.sharding.finish is not None:
        return stage.sharding.finish
    return stage.fn


def sharded(stage: Stage, shards: int) -> bool:
    return shards > 1 and stage.sharding is not None


def is_cached(stage: Stage, work: Path, p: Any, shards: int = 1) -> bool:
    if not stage.cached:
        return False
    return stamps.is_cached(
        work,
        stage.name,
        code(stage, shards),
        inputs=stage.inputs(work, p),
        outputs=outputs(stage, work, p),
        params=stage.key(p),
    )


def run_stage(
    stage: Stage, work: Path, p: Any, res: Resources = Resources(), shards: int = 1
) -> tuple[Any, bool]:
    """Run one stage (after its shard steps have run, when sharded); (result, cached)."""
    work = Path(work)
    fn = code(stage, shards)

    def call() -> Any:
        if sharded(stage, shards) and stage.sharding.finish is not None:
            result = fn(work, p, shards, res)
        else:
            result = fn(work, p, res)
        record_stats(work, stage, result)
        return result

    if not stage.cached:
        return call(), False
    return stamps.run_cached(
        work,
        stage.name,
        fn,
        inputs=stage.inputs(work, p),
        outputs=outputs(stage, work, p),
        params=stage.key(p),
        call=call,
    )


def step_name(step: ShardStep, shard: int | None, shards: int) -> str:
    if shard is None:
        return f"{step.name}-{shards:03d}"
    return f"{step.name}-{shard:03d}-of-{shards:03d}"


def run_step(
    stage: Stage,
    step: ShardStep,
    work: Path,
    p: Any,
    shard: int | None,
    shards: int,
    res: Resources = Resources(),
) -> Any:
    """One shard step (``shard`` None for a step that runs once); stamped when it declares
    its files."""
    work = Path(work)

    def call() -> Any:
        if shard is None:
            return step.fn(work, p, shards, res)
        return step.fn(work, p, shard, shards, res)

    if step.inputs is None or step.outputs is None:
        return call()
    i = 0 if shard is None else shard
    result, _ = stamps.run_cached(
        work,
        step_name(step, shard, shards),
        step.fn,
        inputs=step.inputs(work, p, i, shards),
        outputs=step.outputs(work, p, i, shards),
        params=stage.key(p),
        call=call,
    )
    return result


@dataclass(frozen=True)
class StepCall:
    """One unit of a sharded stage's work, for a runner to execute (maybe elsewhere)."""

    stage: Stage
    step: ShardStep
    shard: int | None

    @property
    def title(self) -> str:
        return self.step.name if self.shard is None else f"{self.step.name} {self.shard}"


def shard_plan(stage: Stage, shards: int) -> list[list[StepCall]]:
    """The groups of step calls to run before a sharded stage: the calls of one group are
    independent of each other, a group runs after the one before it."""
    if not sharded(stage, shards):
        return []
    return [
        [StepCall(stage, step, i) for i in range(shards)]
        if step.each
        else [StepCall(stage, step, None)]
        for step in stage.sharding.steps
    ]


@contextlib.contextmanager
def work_lock(work: Path, what: str = "build") -> Iterator[None]:
    """Hold the work directory for one build or command at a time; a second one is refused
    at once with a clear message rather than interleaving its writes with the first."""
    from filelock import FileLock, Timeout

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lock = FileLock(work / workdir.BUILD_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"another {what} is using {work} (its lock is {work / workdir.BUILD_LOCK}); "
            "wait for it to finish or use another --work-root"
        ) from None
    try:
        yield
    finally:
        lock.release()


def run_all(
    work: Path,
    settings: dict[str, Any],
    res: Resources = Resources(),
    shards: int = 1,
    stages: Iterable[Stage] = STAGES,
    log_to: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``stages`` in order in this process; returns every stage's result by name."""
    say = log_to or log.info
    results: dict[str, Any] = {}
    with work_lock(work, "command"):
        for stage in stages:
            p = stage.make_params(settings)
            if not is_cached(stage, work, p, shards):
                for group in shard_plan(stage, shards):
                    for c in group:
                        run_step(stage, c.step, work, p, c.shard, shards, res)
            result, cached = run_stage(stage, work, p, res, shards)
            say(describe(stage, result, cached))
            results[stage.name] = result
    return results


def describe(stage: Stage, result: Any, cached: bool) -> str:
    """One log line for a finished stage."""
    if cached:
        return f"{stage.name}: unchanged inputs, reusing the finished work"
    return f"{stage.name}: done {brief(result)}"


def brief(result: Any) -> str:
    if isinstance(result, dict):
        keys = [k for k, v in result.items() if isinstance(v, int | float | str)][:8]
        return ", ".join(f"{k}={result[k]}" for k in keys)
    return str(result)[:200]
