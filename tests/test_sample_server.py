"""The demo's sample: its files name one base URL whatever port it is served on (#17.6)."""

from __future__ import annotations

import socket

from pipeline.http import alias
from pipeline.io import sha256_file
from pipeline.sample import SampleSpec
from pipeline.sample_server import serve_sample
from pipeline.sources.fetch import fetch
from tests.prefect_fixtures import free_port

SPEC = SampleSpec(n_items=40, n_users=200)


def test_a_busy_port_changes_nothing_but_where_it_is_served(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ACMMG_DEMO_PORT", str(port))
    with serve_sample(tmp_path / "free", SPEC) as (base, served):
        assert base == served == f"http://127.0.0.1:{port}"
    with socket.socket() as busy:  # someone else holds the port now
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with serve_sample(tmp_path / "busy", SPEC) as (base, served):
            assert base == f"http://127.0.0.1:{port}" and served != base
            src = fetch(
                f"{base}/meta_Demo.jsonl.gz", tmp_path / "cache", aliases=[f"{base}={served}"]
            )
            assert src.uri == src.served_by == f"{base}/meta_Demo.jsonl.gz"
            assert src.sha256 == sha256_file(tmp_path / "busy" / "meta_Demo.jsonl.gz")
    for name in ("Demo.jsonl.gz", "meta_Demo.jsonl.gz"):
        assert sha256_file(tmp_path / "free" / name) == sha256_file(tmp_path / "busy" / name)


def test_alias_rewrites_the_first_matching_prefix():
    aliases = ["http://127.0.0.1:8765=http://127.0.0.1:40001", "http://x=http://y"]
    assert (
        alias("http://127.0.0.1:8765/images/a.jpg", aliases)
        == "http://127.0.0.1:40001/images/a.jpg"
    )
    assert alias("http://127.0.0.1:8766/a", aliases) == "http://127.0.0.1:8766/a"
    assert alias("http://x/z", aliases) == "http://y/z"
