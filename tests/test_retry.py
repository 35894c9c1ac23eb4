"""The one retry policy (acmmg.retry) against a real local HTTP server that counts attempts,
and the same rules as seen through each of its users: the dump fetch, the light loader's
download and the image fetcher."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from acmmg.retry import Retry, RetryPolicy, check_status
from acmmg.transport import HttpSource
from pipeline.images.fetch import Fetcher
from pipeline.sources.fetch import FetchError, fetch
from tests.httpserver import FaultyServer
from tests.image_server import closed_port, local_config

FAST = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05, deadline=10, max_retry_after=5)
PATH = "/file.txt"


@pytest.fixture
def server(tmp_path):
    (tmp_path / "file.txt").write_text("hello\n")
    with FaultyServer(tmp_path) as srv:
        yield srv


def get(url: str) -> bytes:
    with requests.get(url, timeout=5) as r:
        return check_status(r, url).content


def hits(server: FaultyServer, path: str = PATH) -> int:
    return sum(1 for method, p, _ in server.requests if method == "GET" and p == path)


def test_503_twice_then_200_takes_three_attempts(server, caplog):
    server.faults[PATH] = ["503", "503"]
    record: list[Retry] = []
    url = server.url + PATH
    with caplog.at_level(logging.WARNING, logger="acmmg.retry"):
        assert FAST.call(lambda: get(url), what=url, record=record) == b"hello\n"
    assert hits(server) == 3
    reason = "HTTP 503 Service Unavailable"
    assert [(r.url, r.attempt, r.reason) for r in record] == [(url, 1, reason), (url, 2, reason)]
    # One line per retry: the URL, the attempt, the reason and the wait.
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert (
        lines[0].startswith(f"{url}: attempt 1 of 4 failed (HTTP 503") and "retrying in" in lines[0]
    )


def test_404_is_not_retried(server):
    with pytest.raises(requests.HTTPError) as e:
        FAST.call(lambda: get(server.url + "/nope"), what="x")
    assert e.value.status == 404 and hits(server, "/nope") == 1


def test_refused_connection_is_not_retried():
    record: list[Retry] = []
    with pytest.raises(requests.ConnectionError):
        FAST.call(lambda: get(f"http://127.0.0.1:{closed_port()}/x"), record=record)
    assert record == []  # one attempt, no retry


def test_429_waits_as_long_as_retry_after_says(server):
    server.faults[PATH] = ["429:1"]
    record: list[Retry] = []
    assert FAST.call(lambda: get(server.url + PATH), record=record) == b"hello\n"
    assert hits(server) == 2 and len(record) == 1
    assert record[0].wait == pytest.approx(1.0, abs=0.06)  # honoured, not the 0.01 s backoff


def test_a_retry_after_past_the_cap_fails_at_once(server):
    server.faults[PATH] = ["429:30"]
    with pytest.raises(requests.HTTPError):
        FAST.call(lambda: get(server.url + PATH))
    assert hits(server) == 1


def test_fetch_retries_env_sets_the_attempts(monkeypatch):
    monkeypatch.setenv("ACMMG_FETCH_RETRIES", "1")
    assert RetryPolicy.from_env().attempts == 2
    assert RetryPolicy.from_env(attempts=5).attempts == 5
    monkeypatch.setenv("ACMMG_FETCH_RETRIES", "many")
    with pytest.raises(Exception, match="ACMMG_FETCH_RETRIES"):
        RetryPolicy.from_env()


def test_a_source_that_is_always_down_fails_in_bounded_attempts_in_one_line(server, tmp_path):
    server.faults[PATH] = ["503"] * 50
    url = server.url + PATH
    with pytest.raises(FetchError) as e:
        fetch(url, tmp_path / "cache", mirrors=[], policy=FAST)
    assert hits(server) == FAST.attempts
    msg = str(e.value)
    assert "\n" not in msg and url in msg and "HTTP 503" in msg


def test_the_light_loader_follows_the_same_rules(server, monkeypatch):
    monkeypatch.setenv("ACMMG_FETCH_RETRIES", "2")
    src = HttpSource(server.url)
    server.faults[PATH] = ["503", "500"]
    assert src.read(PATH.lstrip("/"), 100) == b"hello\n" and hits(server) == 3
    server.faults[PATH] = ["503"] * 10
    with pytest.raises(Exception, match="after 3 attempts") as e:
        src.read(PATH.lstrip("/"), 100)
    assert server.url + PATH in str(e.value) and hits(server) == 6
    refused = HttpSource(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(Exception, match="connection refused") as e:
        refused.read("x", 100)
    assert "attempt" not in str(e.value)  # failed fast, not after retries


def test_images_follow_the_same_rules_within_their_deadline(server):
    fetcher = Fetcher(local_config(retries=3, backoff_base=0.01, backoff_max=0.05))
    try:
        server.faults[PATH] = ["503", "503"]
        res = fetcher.fetch(server.url + PATH)
        assert res.attempts == 3 and hits(server) == 3
        res = fetcher.fetch(server.url + "/nope")
        assert res.status == "http_404" and res.attempts == 1
        res = fetcher.fetch(f"http://127.0.0.1:{closed_port()}/a.jpg")
        assert res.status == "connection_error" and res.attempts == 1
    finally:
        fetcher.close()


def test_the_policy_lives_in_the_light_package_without_the_pipeline(tmp_path):
    code = "import sys, acmmg.retry, acmmg.download; print('pipeline' in sys.modules)"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr[-2000:]
