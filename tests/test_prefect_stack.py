"""The Prefect stack as installed, against a real ``prefect server start``: served cron
schedules become SCHEDULED flow runs, ``prefect deployment ls`` / ``inspect`` work, a running
flow run can be cancelled (``deployment run --watch`` reports it), and a deployment whose
interval schedule comes due runs and publishes. One server for the module, its scheduler
loop shortened."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.categories import load_registry
from tests.prefect_fixtures import BIN, PrefectServer, free_port, prefect_env

pytestmark = pytest.mark.slow
DEMO_PORT = str(free_port())  # the demo sample's port: part of its source URLs
SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    # One future run per deployment is enough to see the scheduler work, and keeps a 30 s
    # interval schedule from queueing a hundred.
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PrefectServer(tmp_path_factory.mktemp("prefect_home"), **SERVER_SETTINGS)
    yield srv
    srv.stop()


def _wait(check, timeout: float, what: str, interval: float = 2.0):
    """``check()`` until it returns something truthy; fail naming ``what`` at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


class Served:
    """``acmmg serve [slug ...]`` against the server, as a process group of its own."""

    def __init__(self, server: PrefectServer, tmp: Path, *slugs: str, **env: str):
        self.log_path = tmp / f"serve-{'-'.join(slugs) or 'all'}.log"
        self.target, self.work = tmp / "published", tmp / "work"
        self.env = prefect_env(
            server.home,
            server.api_url,
            ACMMG_PUBLISH_TO=str(self.target),
            ACMMG_WORK_ROOT=str(self.work),
            ACMMG_DEMO_PORT=DEMO_PORT,
            SOURCE_DATE_EPOCH="1767225600",
            COLUMNS="250",  # rich tables of the prefect CLI: no truncated names
            **env,
        )
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "acmmg"), "serve", *slugs],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self) -> str:
        return self.log_path.read_text()[-4000:]

    def prefect(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "prefect"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.log.close()


def _deployments(server: PrefectServer) -> dict[str, dict]:
    return {d["name"]: d for d in server.api("POST", "/deployments/filter", limit=200)}


@pytest.fixture(scope="class")
def served(server, tmp_path_factory):
    """``acmmg serve``: every category on its cron schedule, for the class that uses it."""
    s = Served(server, tmp_path_factory.mktemp("served"))
    registry = load_registry()
    _wait(lambda: len(_deployments(server)) >= len(registry), 240, "the deployments")
    yield s
    s.stop()


class TestServedRegistry:
    """Every category served on its cron schedule (one serve process for the class)."""

    def test_cron_schedules_become_scheduled_runs(self, server, served):
        registry = load_registry()
        deployments = _deployments(server)
        assert set(deployments) == set(registry), served.tail()
        for slug, cat in registry.items():
            d = deployments[slug]
            assert [s["schedule"].get("cron") for s in d["schedules"]] == [cat.schedule]
            assert d["parameters"] == {"category": slug}
            assert d["global_concurrency_limit"]["limit"] == 1  # runs of a category never overlap
            assert sorted(d["tags"]) == sorted({"acmmg", *(f"paper:{p}" for p in cat.papers)})

        def scheduled() -> bool:
            runs = server.flow_runs()
            ids = {r["deployment_id"] for r in runs if r["state_type"] == "SCHEDULED"}
            return ids >= {d["id"] for d in deployments.values()}

        _wait(scheduled, 120, "a SCHEDULED run of every deployment")
        runs = [r for r in server.flow_runs() if r["state_type"] == "SCHEDULED"]
        assert all(r["auto_scheduled"] for r in runs)

    def test_deployment_ls_and_inspect(self, served):
        ls = served.prefect("deployment", "ls")
        assert ls.returncode == 0, ls.stdout + ls.stderr
        for slug in load_registry():
            assert f"build-category/{slug}" in ls.stdout, ls.stdout
        inspect = served.prefect("deployment", "inspect", "build-category/electronics")
        assert inspect.returncode == 0, inspect.stdout + inspect.stderr
        assert "'cron': '0 0 1 * *'" in inspect.stdout and "'name': 'electronics'" in inspect.stdout

    def test_cancelling_a_running_flow_run(self, server, served, tmp_path):
        params = json.dumps({"work_root": str(tmp_path / "work")})
        watch = subprocess.Popen(
            [str(BIN / "prefect"), "deployment", "run", "build-category/demo"]
            + ["--params", params, "--watch", "--watch-timeout", "600"],
            env=served.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        demo = _deployments(server)["demo"]["id"]

        def running() -> dict | None:
            runs = [r for r in server.flow_runs(demo) if not r["auto_scheduled"]]
            return next((r for r in runs if r["state_type"] == "RUNNING"), None)

        run = _wait(running, 180, "the demo run to start")
        cancel = served.prefect("flow-run", "cancel", run["id"])
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr

        def cancelled() -> bool:
            return server.api("GET", f"/flow_runs/{run['id']}")["state_type"] == "CANCELLED"

        _wait(cancelled, 120, f"the cancellation of {run['id']}; serve log: {served.tail()}")
        out, _ = watch.communicate(timeout=120)
        assert watch.returncode == 1 and "Cancelled" in out, out


def test_an_interval_schedule_that_comes_due_runs_and_publishes(server, tmp_path):
    """The demo deployment served with a 30 s interval: the scheduler makes a run, the serve
    process runs it, the category is published."""
    served = Served(server, tmp_path, "demo", ACMMG_SERVE_INTERVAL="30")
    try:

        def demo_interval() -> str | None:
            d = _deployments(server).get("demo")
            if d and [s["schedule"].get("interval") for s in d["schedules"]] == [30.0]:
                return d["id"]
            return None

        demo = _wait(demo_interval, 180, "the demo deployment with its interval schedule")

        def finished() -> dict | None:
            runs = [r for r in server.flow_runs(demo) if r["auto_scheduled"]]
            done = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
            return done[0] if done else None

        run = _wait(finished, 600, f"a scheduled demo run to finish; serve log: {served.tail()}")
        assert run["state_type"] == "COMPLETED", served.tail()
        version = (served.target / "demo" / "LATEST").read_text().strip()
        folder = served.target / "demo" / "versions" / version
        manifest = json.loads((folder / "manifest.json").read_text())
        for rel in manifest["files"]:
            assert (folder / rel).is_file(), rel
        assert manifest["counts"]["nodes"] > 50
        src = manifest["sources"][0]
        assert src["served_by"] == src["uri"] and src["uri"].endswith("/Demo.jsonl.gz")
        # A run a person can read: its name, its tasks named for what they do, artifacts.
        assert re.fullmatch(r"demo-\d{8}-\d{4}", run["name"]), run["name"]
        tasks = server.api("POST", "/task_runs/filter", flow_runs={"id": {"any_": [run["id"]]}})
        names = {t["name"].rsplit("-", 1)[0] for t in tasks}
        assert {"fetch sources", "graph", "embed (CLIP)", "publish"} <= names, names
        arts = server.api("POST", "/artifacts/filter", flow_runs={"id": {"any_": [run["id"]]}})
        by_key = {a["key"]: a for a in arts}
        summary = by_key["demo-summary"]["data"]
        assert f"version `{version}`" in summary and "| graph | done |" in summary
        table = by_key["demo-statistics"]["data"]
        rows = json.loads(table) if isinstance(table, str) else table
        assert rows[0]["row"] == "this build" and rows[0]["nodes"] == manifest["counts"]["nodes"]
    finally:
        served.stop()
