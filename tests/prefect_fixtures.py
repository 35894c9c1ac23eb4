"""A real Prefect server on 127.0.0.1 (temporary PREFECT_HOME, analytics and UI off)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


class PrefectServer:
    """``prefect server start`` on a free port of 127.0.0.1; ``env`` adds server settings
    (e.g. PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS)."""

    def __init__(self, home: Path, **env: str):
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = open(home / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=prefect_env(home, **env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()}")
            try:
                if requests.get(f"{self.api_url}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError("prefect server did not start in 180 s")

    def api(self, method: str, path: str, **body) -> list | dict:
        """One call to the server's REST API (JSON in and out)."""
        r = requests.request(method, f"{self.api_url}{path}", json=body or None, timeout=30)
        r.raise_for_status()
        return r.json() if r.content else {}

    def flow_runs(self, deployment_id: str | None = None) -> list[dict]:
        """Flow runs, oldest first (of one deployment when ``deployment_id`` is given)."""
        body: dict = {"sort": "EXPECTED_START_TIME_ASC", "limit": 200}
        if deployment_id:
            body["deployments"] = {"id": {"any_": [deployment_id]}}
        return self.api("POST", "/flow_runs/filter", **body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
