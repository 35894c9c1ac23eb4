"""Fetching the dumps against real local HTTP servers: mirrors tried in turn and recorded,
one retry policy (what is retried, what fails at once, bounded tries), truncated
close-delimited bodies, checksums the server gives, and ``acmmg sources check``."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

import pytest
import requests

from acmmg.retry import HttpStatusError, RetryPolicy, describe, is_transient
from pipeline.sources.detect import last_line_complete
from pipeline.sources.fetch import FetchError, TruncatedDownload, fetch
from tests.httpserver import FaultyServer
from tests.prefect_fixtures import free_port

FAST = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05, deadline=10)


def _lines(n: int) -> bytes:
    return b"".join(
        json.dumps({"user_id": f"U{i}", "asin": f"A{i % 7}"}).encode() + b"\n" for i in range(n)
    )


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "srv"
    root.mkdir()
    (root / "Cat.jsonl").write_bytes(_lines(96))
    (root / "Cat.jsonl.gz").write_bytes(gzip.compress(_lines(2000), mtime=0))
    return root


def _gets(srv: FaultyServer, path: str) -> int:
    return sum(1 for m, p, _ in srv.requests if m == "GET" and p == path)


def test_dead_source_falls_through_a_redirecting_mirror_to_a_good_one(root, tmp_path, caplog):
    dead = f"http://127.0.0.1:{free_port()}/Cat.jsonl.gz"
    with FaultyServer(root) as good, FaultyServer(root) as hop:
        hop.redirects["/moved/Cat.jsonl.gz"] = f"{good.url}/Cat.jsonl.gz"
        mirror = f"{hop.url}/moved/Cat.jsonl.gz"
        with caplog.at_level(logging.WARNING):
            src = fetch(dead, tmp_path / "cache", mirrors=[mirror], policy=FAST)
        assert src.path.read_bytes() == (root / "Cat.jsonl.gz").read_bytes()
        fp = src.fingerprint()
        assert fp["uri"] == dead and fp["served_by"] == mirror
        assert set(fp) == {"uri", "size", "sha256", "served_by"}
        # A refused connection is not retried: one warning moving on, no "try 2 of 3".
        assert not any("try 2 of" in r.message and dead in r.message for r in caplog.records)
        assert any("trying mirror" in r.message for r in caplog.records)
        # Again: the mirror's complete copy is reused (a HEAD, no second GET).
        again = fetch(dead, tmp_path / "cache", mirrors=[mirror], policy=FAST)
        assert again.fingerprint() == fp and _gets(good, "/Cat.jsonl.gz") == 1


def test_no_source_reachable_names_every_url(root, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/Cat.jsonl.gz"
    with FaultyServer(root) as srv:
        missing = f"{srv.url}/nope.jsonl.gz"
        with pytest.raises(FetchError) as e:
            fetch(dead, tmp_path / "cache", mirrors=[missing], policy=FAST)
    msg = str(e.value)
    assert dead in msg and "connection refused" in msg and missing in msg and "404" in msg


def test_503_is_retried_then_served(root, tmp_path):
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl"] = ["503", "503"]
        src = fetch(f"{srv.url}/Cat.jsonl", tmp_path / "cache", mirrors=[], policy=FAST)
        assert src.size == (root / "Cat.jsonl").stat().st_size
        assert _gets(srv, "/Cat.jsonl") == 3


def test_a_source_that_stays_down_fails_after_a_bounded_number_of_tries(root, tmp_path):
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl"] = ["503"] * 50
        with pytest.raises(FetchError, match=r"Cat\.jsonl: HTTP 503"):
            fetch(f"{srv.url}/Cat.jsonl", tmp_path / "cache", mirrors=[], policy=FAST)
        assert _gets(srv, "/Cat.jsonl") == FAST.attempts


def test_fetch_retries_env_is_honoured(root, tmp_path, monkeypatch):
    monkeypatch.setenv("ACMMG_FETCH_RETRIES", "1")
    assert RetryPolicy.from_env().attempts == 2
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl"] = ["500"] * 10
        with pytest.raises(FetchError, match="HTTP 500"):
            fetch(f"{srv.url}/Cat.jsonl", tmp_path / "cache", mirrors=[], backoff=0.01)
        assert _gets(srv, "/Cat.jsonl") == 2


def test_other_4xx_fail_at_once(root, tmp_path):
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl"] = ["403"] * 5
        with pytest.raises(FetchError, match="HTTP 403"):
            fetch(f"{srv.url}/Cat.jsonl", tmp_path / "cache", mirrors=[], policy=FAST)
        assert _gets(srv, "/Cat.jsonl") == 1


def test_429_waits_as_long_as_retry_after_says(root, tmp_path):
    exc = HttpStatusError("http://x/", 429, "Too Many Requests", retry_after=7.0)
    assert is_transient(exc) and FAST.wait(1, exc) >= 7.0
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl"] = ["429:1"]
        fetch(f"{srv.url}/Cat.jsonl", tmp_path / "cache", mirrors=[], policy=FAST)
        assert _gets(srv, "/Cat.jsonl") == 2
        # A Retry-After past the policy's limit fails now rather than sleeping for it.
        srv.faults["/Cat.jsonl.gz"] = ["503:3600"]
        with pytest.raises(FetchError, match="HTTP 503"):
            fetch(f"{srv.url}/Cat.jsonl.gz", tmp_path / "cache", mirrors=[], policy=FAST)
        assert _gets(srv, "/Cat.jsonl.gz") == 1


def test_errors_are_classified_and_described_in_one_line():
    for url, words in [
        ("http://no-such-host.invalid/x", "cannot resolve host 'no-such-host.invalid'"),
        (f"http://127.0.0.1:{free_port()}/x", "connection refused"),
    ]:
        with pytest.raises(requests.RequestException) as e:
            requests.get(url, timeout=5)
        assert describe(e.value) == words and not is_transient(e.value)
    assert not is_transient(HttpStatusError("u", 404)) and is_transient(HttpStatusError("u", 502))
    # httpx (Prefect's client): the top level names the API URL.
    import httpx

    from pipeline.http import describe_error

    api = f"http://127.0.0.1:{free_port()}/api/health"
    with pytest.raises(httpx.HTTPError) as e:
        httpx.get(api)
    assert describe_error(e.value) == f"{api}: connection refused"
    assert is_transient(requests.ReadTimeout("read timed out"))


def test_close_delimited_body_cut_mid_line_is_a_truncation_error(root, tmp_path):
    data = (root / "Cat.jsonl").read_bytes()
    with FaultyServer(root) as srv:
        srv.close_delimited = True
        srv.ignore_range = True  # nothing to resume from: every try is cut the same way
        srv.faults["/Cat.jsonl"] = [f"drop:{len(data) // 2 + 3}"] * FAST.attempts
        url = f"{srv.url}/Cat.jsonl"
        with pytest.raises(TruncatedDownload, match=r"Cat\.jsonl.*truncated"):
            fetch(url, tmp_path / "cache", mirrors=[], policy=FAST)
        assert _gets(srv, "/Cat.jsonl") == FAST.attempts
        assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".part")]
        # The same server, whole this time: close-delimited but ending on a full line.
        src = fetch(url, tmp_path / "cache", mirrors=[], policy=FAST)
        assert src.path.read_bytes() == data


def test_close_delimited_gzip_cut_short_is_a_truncation_error(root, tmp_path):
    size = (root / "Cat.jsonl.gz").stat().st_size
    with FaultyServer(root) as srv:
        srv.close_delimited = True
        srv.ignore_range = True
        srv.faults["/Cat.jsonl.gz"] = [f"drop:{size - 20}"] * FAST.attempts
        with pytest.raises(TruncatedDownload):
            fetch(f"{srv.url}/Cat.jsonl.gz", tmp_path / "cache", mirrors=[], policy=FAST)


def test_close_delimited_drop_is_resumed_with_range(root, tmp_path):
    data = (root / "Cat.jsonl").read_bytes()
    with FaultyServer(root) as srv:
        srv.close_delimited = True
        srv.faults["/Cat.jsonl"] = [f"drop:{len(data) // 2 + 3}"]
        src = fetch(f"{srv.url}/Cat.jsonl", tmp_path / "cache", mirrors=[], policy=FAST)
        assert src.path.read_bytes() == data
        ranges = [r for m, p, r in srv.requests if m == "GET"]
        assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 2 + 3}-"


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_a_checksum_etag_is_verified(root, tmp_path, algo):
    data = (root / "Cat.jsonl").read_bytes()
    good = hashlib.new(algo, data).hexdigest()
    with FaultyServer(root) as srv:
        srv.headers["/Cat.jsonl"] = {"ETag": f'"{good}"'}
        fetch(f"{srv.url}/Cat.jsonl", tmp_path / "a", mirrors=[], policy=FAST)
        srv.headers["/Cat.jsonl"] = {"ETag": f'"{"0" * len(good)}"'}
        with pytest.raises(FetchError, match=f"does not match the server's {algo}"):
            fetch(f"{srv.url}/Cat.jsonl", tmp_path / "b", mirrors=[], policy=FAST)
        assert not [p for p in (tmp_path / "b").iterdir() if p.name.endswith("Cat.jsonl")]


def test_a_digest_header_is_verified(root, tmp_path):
    import base64

    with FaultyServer(root) as srv:
        wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
        srv.headers["/Cat.jsonl"] = {"Repr-Digest": f"sha-256=:{wrong}:"}
        with pytest.raises(FetchError, match="sha256"):
            fetch(f"{srv.url}/Cat.jsonl", tmp_path / "c", mirrors=[], policy=FAST)


def test_local_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(FetchError, match="is a directory, not a file"):
        fetch(str(tmp_path))
    with pytest.raises(FetchError, match="input file not found"):
        fetch(str(tmp_path / "nope.jsonl"))


def test_last_line_complete(tmp_path):
    cases = {
        "whole.jsonl": (b'{"a": 1}\n{"b": 2}\n', True),
        "no_newline.jsonl": (b'{"a": 1}\n{"b": 2}', True),
        "cut.jsonl": (b'{"a": 1}\n{"b": ', False),
        "array.json": (b'[{"a": 1},\n{"b": 2}]', True),
        "empty.jsonl": (b"", True),
    }
    for name, (data, want) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert last_line_complete(tmp_path / name) is want, name
    whole = gzip.compress(_lines(500))
    (tmp_path / "whole.gz").write_bytes(whole)
    (tmp_path / "short.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "cutline.gz").write_bytes(gzip.compress(_lines(5) + b'{"user_id": "U'))
    assert last_line_complete(tmp_path / "whole.gz")
    assert not last_line_complete(tmp_path / "short.gz")
    assert not last_line_complete(tmp_path / "cutline.gz")


def _registry(path: Path, entries: dict[str, dict]) -> Path:
    lines = []
    for slug, e in entries.items():
        lines += [
            f"[categories.{slug}]",
            f'name = "{slug}"',
            'file = "Cat"',
            'schedule = "0 0 1 * *"',
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sources_check_against_dead_redirecting_and_good_servers(root, tmp_path, capsys):
    from pipeline.cli import main

    dead = f"http://127.0.0.1:{free_port()}"
    with FaultyServer(root) as good, FaultyServer(root) as hop:
        hop.redirects["/Cat.jsonl.gz"] = f"{good.url}/Cat.jsonl.gz"
        good.headers["/Cat.jsonl.gz"] = {
            "ETag": '"v1"',
            "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
        }
        reg = _registry(
            tmp_path / "categories.toml",
            {
                "direct": {"reviews": f"{good.url}/Cat.jsonl.gz", "meta": f"{good.url}/Cat.jsonl"},
                "mirrored": {
                    "reviews": f"{dead}/Cat.jsonl.gz",
                    "reviews_mirrors": [f"{hop.url}/Cat.jsonl.gz"],
                    "meta": f"{good.url}/Cat.jsonl",
                },
            },
        )
        assert main(["sources", "check", "--registry", str(reg)]) == 0
        out = capsys.readouterr().out
        lines = {tuple(ln.split()[:2]): ln for ln in out.splitlines()[1:]}
        size = (root / "Cat.jsonl.gz").stat().st_size
        assert (
            '"v1"' in lines["direct", "reviews"]
            and "source (127.0.0.1)" in lines["direct", "reviews"]
        )
        assert f"{size / 1000:.1f} KB" in lines["direct", "reviews"]
        assert "mirror 1 (127.0.0.1)" in lines["mirrored", "reviews"]
        assert "connection refused" in lines["mirrored", "reviews"]
        # Nothing was downloaded: HEAD requests only.
        assert {m for m, _, _ in good.requests} == {"HEAD"}

        # HEAD refused: a GET of byte 0 gives the size from Content-Range.
        good.head_status = 405
        assert main(["sources", "check", "direct", "--registry", str(reg), "--json"]) == 0
        checks = json.loads(capsys.readouterr().out)
        assert checks[0]["probes"][0]["size"] == size
        assert ("GET", "/Cat.jsonl.gz", "bytes=0-0") in good.requests

        dead_reg = _registry(
            tmp_path / "dead.toml",
            {"gone": {"reviews": f"{dead}/Cat.jsonl.gz", "meta": f"{good.url}/missing.jsonl"}},
        )
        assert main(["sources", "check", "--registry", str(dead_reg)]) == 1
        out = capsys.readouterr().out
        assert "UNREACHABLE" in out and "HTTP 404" in out and "no reachable source for: gone" in out


def test_requests_own_http_errors_are_described_by_status(root):
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl"] = ["503"]
        r = requests.get(f"{srv.url}/Cat.jsonl", timeout=10)
        with pytest.raises(requests.HTTPError) as e:
            r.raise_for_status()
    assert describe(e.value) == "HTTP 503 Service Unavailable" and is_transient(e.value)
