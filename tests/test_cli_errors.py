"""The command line's answers to mistakes and broken sources: one line, exit 2, no traceback
(one only under -v); a closed pipe ends quietly; ``--version`` from the package metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

from tests.httpserver import FaultyServer
from tests.prefect_fixtures import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _acmmg(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": REPO, "ACMMG_FETCH_RETRIES": "0", **env}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line_error(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    for w in words:
        assert w in line, line
    return line


def test_http_503_and_refused_connection_are_one_line_naming_the_url(tmp_path):
    with FaultyServer(tmp_path) as srv:
        (tmp_path / "x.jsonl").write_text('{"user_id": "U", "asin": "A"}\n')
        srv.faults["/x.jsonl"] = ["503"] * 5
        url = f"{srv.url}/x.jsonl"
        _one_line_error(
            _acmmg("graph", "--reviews", url, "--out", str(tmp_path / "o")), url, "HTTP 503"
        )
        srv.faults["/x.jsonl"] = ["503"] * 5
        verbose = _acmmg("-v", "graph", "--reviews", url, "--out", str(tmp_path / "o"))
        assert verbose.returncode == 2 and "Traceback" in verbose.stderr
    dead = f"http://127.0.0.1:{free_port()}/x.jsonl"
    _one_line_error(
        _acmmg("graph", "--reviews", dead, "--out", str(tmp_path / "o")), dead, "connection refused"
    )


def test_s3_without_credentials_is_one_line(tmp_path):
    no_creds = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {
        "AWS_EC2_METADATA_DISABLED": "true",  # no wait for an instance metadata service
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "graph", "--reviews", "s3://acmmg-test/r.jsonl"]
        + ["--out", str(tmp_path / "o")],
        env={**no_creds, **env, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line_error(r, "s3://acmmg-test/r.jsonl", "no credentials")


def test_a_directory_given_as_input_is_named_as_such(tmp_path):
    r = _acmmg("graph", "--reviews", str(tmp_path), "--out", str(tmp_path / "o"))
    _one_line_error(r, str(tmp_path), "is a directory")


def test_unknown_category_suggests_close_matches():
    line = _one_line_error(_acmmg("sources", "check", "electronix"))
    assert "unknown category 'electronix'; did you mean 'electronics'?" in line


def test_broken_pipe_is_quiet():
    # The reader is gone before the command writes (as `acmmg categories | head` ends up).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pipeline", "categories"],
            env={**os.environ, "PYTHONPATH": REPO},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert r.returncode == 141 and r.stderr == ""


def test_version_comes_from_the_package_metadata():
    r = _acmmg("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"acmmg {version('acmmg-pipeline')}"
