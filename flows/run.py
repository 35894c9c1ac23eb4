"""Run the build-category flow in this process, with the chosen task runner."""

from __future__ import annotations

from typing import Any

from flows.build_category import build_category


def make_task_runner(kind: str = "thread", dask_address: str | None = None, dask_workers: int = 2):
    """Prefect's thread pool by default; Dask: an existing cluster, or a LocalCluster."""
    if kind == "dask":
        import dask
        from prefect_dask import DaskTaskRunner

        # Stage tasks start processes of their own (image workers, DataLoader decoders);
        # daemonic Dask workers may not. Workers of an existing cluster need the same
        # setting: DASK_DISTRIBUTED__WORKER__DAEMON=False.
        dask.config.set({"distributed.worker.daemon": False})

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def run_build_category(
    category: str,
    *,
    task_runner: str = "thread",
    dask_address: str | None = None,
    dask_workers: int = 2,
    **params: Any,
) -> dict:
    runner = make_task_runner(task_runner, dask_address, dask_workers)
    flow = build_category.with_options(task_runner=runner)
    if task_runner == "dask" and params.get("shards") is None:
        params["shards"] = 2 * dask_workers
    return flow(category=category, **{k: v for k, v in params.items() if v is not None})
