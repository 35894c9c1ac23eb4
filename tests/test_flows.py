"""The build-category flow through the local engine: reruns that do no work, kill and resume,
failing sources, a Dask cluster (deployments and schedules on a real Prefect server are in
tests/test_prefect_stack.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import workdir
from pipeline.stages import STAGES
from tests.httpserver import FaultyServer
from tests.prefect_fixtures import BIN, free_port, prefect_env

pytestmark = pytest.mark.slow
EPOCH = "1767225600"  # SOURCE_DATE_EPOCH: the manifest's build time, for byte comparisons
# One port for the demo's sample server in every run: its URLs are part of the sources.
DEMO_PORT = str(free_port())


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _published(target: Path, slug: str = "demo") -> Path:
    version = (target / slug / "LATEST").read_text().strip()
    return target / slug / "versions" / version


def _tree_state(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _build(
    tmp: Path,
    home: Path,
    target: Path,
    work: Path,
    *extra: str,
    env_extra=None,
    wait: bool = True,
    api_url: str | None = None,
):
    env = prefect_env(
        home, api_url, SOURCE_DATE_EPOCH=EPOCH, ACMMG_DEMO_PORT=DEMO_PORT, **(env_extra or {})
    )
    cmd = [
        str(BIN / "acmmg"),
        "build",
        "demo",
        "--publish-to",
        str(target),
        "--work-root",
        str(work),
        *extra,
    ]
    log = open(tmp / f"build-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    if not wait:
        return proc, log
    rc = proc.wait(900)
    log.close()
    return rc, Path(log.name).read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted local build of the demo: the artifacts every other run must equal."""
    tmp = tmp_path_factory.mktemp("reference")
    home = tmp / "home"
    home.mkdir()
    target, work = tmp / "published", tmp / "work"
    rc, log = _build(tmp, home, target, work)
    assert rc == 0, log[-5000:]
    return tmp, home, target, work


def test_rerun_does_no_work_and_republishes_nothing(reference):
    tmp, home, target, work = reference
    before_work, before_pub = _tree_state(work), _tree_state(target)
    rc, log = _build(tmp, home, target, work)
    assert rc == 0, log[-5000:]
    for stage in [
        "ingest",
        "clean",
        "graph",
        "images",
        "embed",
        "filter",
        "classes",
        "relations",
        "assemble",
    ]:
        assert f"{stage}: unchanged inputs, reusing the finished work" in log, stage
    assert "already published; nothing uploaded" in log
    after_pub = _tree_state(target)
    assert after_pub == before_pub  # nothing republished, LATEST untouched
    changed = {p for p, m in _tree_state(work).items() if before_work.get(p) != m}
    # run_timings.json is the record of this run (bench/bench_flow.py reads it): rewritten.
    timings = f"demo/{workdir.RUN_TIMINGS}"
    assert not {
        p for p in changed if not p.startswith((".stamps", "downloads", "sample")) and p != timings
    }
    record = json.loads((work / timings).read_text())["stages"]
    assert [r["stage"] for r in record] == [s.name for s in STAGES]
    assert all(r["cached"] for r in record if r["stage"] not in ("fetch", "publish"))
    assert all(r["seconds"] >= 0 and r["start"] > 0 for r in record)


@pytest.mark.parametrize(
    "stage,extra",
    [
        ("graph", ()),
        ("embed", ()),
        ("relations", ()),
        # The split graph stage, killed between its prepare step and its merge.
        ("graph-partitions", ("--shards", "2")),
    ],
)
def test_killed_run_resumes_to_identical_artifacts(reference, tmp_path, stage, extra):
    _, _, ref_target, _ = reference
    home = tmp_path / "home"
    home.mkdir()
    target, work = tmp_path / "published", tmp_path / "work"
    proc, log = _build(tmp_path, home, target, work, *extra, wait=False)
    # Kill (SIGKILL, the whole process group) as soon as the stage has started: when the
    # stamp of the stage before it is written.
    before = {
        "graph": "clean",
        "embed": "images",
        "relations": "classes",
        "graph-partitions": "graph-prepare-002",
    }[stage]
    stamp = work / "demo" / ".stamps" / f"{before}.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not stamp.exists():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    assert not (target / "demo" / "LATEST").exists()
    rc, out = _build(tmp_path, home, target, work, *extra)
    assert rc == 0, out[-5000:]
    assert _files(_published(target)) == _files(_published(ref_target))


def test_source_that_fails_twice_then_works(reference, tmp_path):
    tmp, home, ref_target, ref_work = reference
    sample = ref_work / "demo" / "sample"
    # The sample's image URLs name DEMO_PORT: serve the whole sample there.
    with FaultyServer(sample, port=int(DEMO_PORT)) as srv:
        srv.faults["/Demo.jsonl.gz"] = ["500", "500"]
        target = tmp_path / "published"
        rc, log = _build(
            tmp_path,
            home,
            target,
            tmp_path / "work",
            "--reviews",
            f"{srv.url}/Demo.jsonl.gz",
            "--meta",
            f"{srv.url}/meta_Demo.jsonl.gz",
            "--allow-private",
            "127.0.0.1/32",
        )
        assert rc == 0, log[-5000:]
        gets = [p for m, p, _ in srv.requests if m == "GET" and p == "/Demo.jsonl.gz"]
        assert len(gets) >= 3
    assert (target / "demo" / "LATEST").exists()


def test_source_that_always_fails_publishes_nothing(reference, tmp_path):
    tmp, home, ref_target, _ = reference
    target = tmp_path / "published"
    # A last good version is in place; the failing run must leave it LATEST.
    import shutil

    shutil.copytree(ref_target, target)
    latest = (target / "demo" / "LATEST").read_text()
    with FaultyServer(tmp_path) as srv:
        url = f"{srv.url}/gone/Demo.jsonl.gz"
        srv.faults["/gone/Demo.jsonl.gz"] = ["500"] * 100
        rc, log = _build(
            tmp_path,
            home,
            target,
            tmp_path / "work",
            "--reviews",
            url,
            env_extra={"ACMMG_FETCH_RETRIES": "1"},
        )
    assert rc != 0
    assert url in log
    assert (target / "demo" / "LATEST").read_text() == latest
    assert sorted(p.name for p in (target / "demo" / "versions").iterdir()) == sorted(
        p.name for p in (ref_target / "demo" / "versions").iterdir()
    )


def test_dask_local_cluster_gives_the_same_artifacts(reference, tmp_path):
    _, _, ref_target, _ = reference
    home = tmp_path / "home"
    home.mkdir()
    target = tmp_path / "published"
    rc, log = _build(
        tmp_path, home, target, tmp_path / "work", "--task-runner", "dask", "--dask-workers", "2"
    )
    assert rc == 0, log[-5000:]
    assert "DaskTaskRunner" in log or "dask" in log.lower()
    # 2 workers -> 4 shards: the projection ran as 4 user-hash partitions and 4 merge buckets.
    parts = tmp_path / "work" / "demo" / "shards" / "graph-004"
    assert sorted(f.name for f in parts.glob("pairs-*")) == [f"pairs-{p:03d}" for p in range(4)]
    assert sorted(f.name for f in parts.glob("kept-*")) == [
        f"kept-{b:03d}.parquet" for b in range(4)
    ]
    assert "graph-partition" in log and "graph-merge-bucket" in log
    assert _files(_published(target)) == _files(_published(ref_target))
