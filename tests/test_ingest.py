"""Ingest: every supported format, the cleaning rules, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import UserError
from pipeline.ingest import IngestError
from pipeline.sources.detect import detect_format
from pipeline.sources.fetch import FetchError, fetch
from tests.httpserver import FaultyServer
from tests.stage_helpers import ingest_dumps


def _review(user="U1", asin="A1", rating=5.0, ts=1_600_000_000_000, **kw) -> dict:
    rec = {
        "rating": rating,
        "title": "t",
        "text": "x",
        "images": [],
        "asin": asin,
        "parent_asin": asin,
        "user_id": user,
        "timestamp": ts,
        "helpful_vote": 0,
        "verified_purchase": True,
    }
    rec.update(kw)
    return rec


def _write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def test_real_2018_5core_sample(raw_dir, tmp_path):
    f = raw_dir / "ooethanoo_2018_5core" / "All_Beauty_5.json"
    assert detect_format(f) == "2018"
    stats = ingest_dumps([str(f)], None, tmp_path)
    n_lines = sum(1 for _ in f.open())
    assert stats["reviews_read"] == n_lines
    assert stats["reviews_rejected"] == 0
    reviews = pl.read_parquet(tmp_path / "reviews.parquet")
    # The real file repeats whole reviews; they are dropped and counted.
    assert stats["duplicates_dropped"] > 0
    assert reviews.height == n_lines - stats["duplicates_dropped"] - stats["repeat_reviews_dropped"]
    assert reviews.select(["user_id", "asin"]).is_duplicated().sum() == 0
    assert reviews["ts"].min() > 10**12  # seconds became milliseconds


def test_real_2018_meta_array_and_csv(raw_dir, tmp_path):
    meta = raw_dir / "xin080124_2018_meta_giftcards_head" / "meta_Gift_Cards.json"
    csv = raw_dir / "gsmvoid_2018_electronics_ratings" / "Electronics0.csv"
    assert detect_format(csv) == "csv"
    assert detect_format(meta) == "2018"
    stats = ingest_dumps([str(csv)], [str(meta)], tmp_path)
    assert stats["items_in_metadata"] == 10
    items = pl.read_parquet(tmp_path / "items.parquet")
    assert items["categories"][0].to_list()[0] == "Gift Cards"
    with_image = items.filter(pl.col("image_url").is_not_null())
    assert with_image.height > 0 and with_image["image_url"][0].startswith("https://")
    assert stats["reviews_read"] == sum(1 for _ in csv.open())


def test_parquet_bipartite_input(tmp_path):
    f = tmp_path / "r.parquet"
    pl.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 10]}).write_parquet(f)
    assert detect_format(f) == "parquet"
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["reviews_kept"] == 3  # (2, 10) twice is one purchase
    assert stats["duplicates_dropped"] == 1
    reviews = pl.read_parquet(tmp_path / "w" / "reviews.parquet")
    assert reviews.schema["user_id"] == reviews.schema["asin"] == pl.String
    assert reviews["asin"].to_list() == ["10", "10", "11"]
    with pytest.raises(UserError, match="no verified flag"):
        ingest_dumps([str(f)], None, tmp_path / "v", verified_only=True)


def test_purchase_table_path_equals_the_general_one(tmp_path, monkeypatch):
    """The one-pass ingest of bare purchase tables writes the bytes the general path (counts,
    window, sorted copy) writes, with the same stats: duplicates, missing ids, two files."""
    import pipeline.ingest as ingest_mod

    rng = random.Random(7)
    files = []
    for n in range(2):
        # Text ids: the general path takes them as they are (it is not given integer ids).
        rows = [(f"u{rng.randrange(300)}", f"i{rng.randrange(60)}") for _ in range(2000)]
        f = tmp_path / f"r{n}.parquet"
        pl.DataFrame(
            {
                "user_id": [None if i % 97 == 0 else u for i, (u, _) in enumerate(rows)],
                "item_id": [None if i % 89 == 0 else v for i, (_, v) in enumerate(rows)],
            }
        ).write_parquet(f)
        files.append(str(f))
    fast = ingest_dumps(files, None, tmp_path / "fast")
    monkeypatch.setattr(ingest_mod, "_purchases_only", lambda *a: False)
    general = ingest_dumps(files, None, tmp_path / "general")
    assert fast["duplicates_dropped"] > 0 and fast["reviews_rejected"] > 0
    assert fast == general
    for name in ("reviews.parquet", "rejects.jsonl"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "general" / name).read_bytes()


def test_2023_sample_gz_and_planted_defects(sample_dir, tmp_path):
    stats = ingest_dumps(
        [str(sample_dir / "Demo.jsonl.gz")], [str(sample_dir / "meta_Demo.jsonl.gz")], tmp_path
    )
    assert detect_format(sample_dir / "Demo.jsonl.gz") == "2023"
    assert stats["reviews_rejected"] > 0
    assert set(stats["rejected_by_reason"]) == {
        "bad_json",
        "missing_user",
        "missing_item",
        "wrong_type:rating",
    }
    assert stats["duplicates_dropped"] > 0
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejects} >= {"bad_json", "missing_user"}
    assert all(r["file"].endswith("Demo.jsonl.gz") for r in rejects)
    items = pl.read_parquet(tmp_path / "items.parquet")
    assert items.height == 240 and items["asin"].is_unique().all()


def test_cleaning_rules_and_malformed_lines(tmp_path):
    lines = [
        json.dumps(_review("U1", "A1", ts=5)),
        json.dumps(_review("U1", "A1", ts=5)),  # exact duplicate
        json.dumps(_review("U1", "A1", ts=1, rating=2.0)),  # same pair, earlier: kept
        json.dumps(_review("U2", "A1", verified_purchase=False)),
        '{"user_id": "U3", "parent_asin": ',  # bad JSON
        json.dumps({k: v for k, v in _review("U4").items() if k != "user_id"}),
        json.dumps({**_review("U5"), "parent_asin": None, "asin": None}),
        json.dumps(_review("U6", rating="five")),
        json.dumps(_review("U7", ts="yesterday")),
        json.dumps(_review(["not", "a", "string"])),
        b'{"user_id": "U8", "parent_asin": "A\xff\xfe", "rating": 1}',  # not UTF-8
        "",
        "[1, 2, 3]",
    ]
    f = _write_lines(tmp_path / "r.jsonl", lines)
    stats = ingest_dumps([str(f)], None, tmp_path / "w", fmt="2023")
    assert stats["rejected_by_reason"] == {
        "bad_json": 2,
        "missing_user": 1,
        "missing_item": 1,
        "wrong_type:rating": 1,
        "wrong_type:timestamp": 1,
        "wrong_type:user_id": 1,
        "encoding": 1,
    }
    assert stats["reviews_rejected"] == 8
    assert stats["duplicates_dropped"] == 1
    assert stats["repeat_reviews_dropped"] == 1
    reviews = pl.read_parquet(tmp_path / "w" / "reviews.parquet").sort("user_id")
    assert reviews["user_id"].to_list() == ["U1", "U2"]
    assert reviews.filter(pl.col("user_id") == "U1")["ts"][0] == 1  # earliest kept
    rejects = (tmp_path / "w" / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == 8
    enc = [json.loads(r) for r in rejects if json.loads(r)["reason"] == "encoding"]
    assert enc[0]["line"] == 11  # CSV-level rejects know their line

    stats = ingest_dumps([str(f)], None, tmp_path / "v", fmt="2023", verified_only=True)
    assert stats["unverified_dropped"] == 1
    assert pl.read_parquet(tmp_path / "v" / "reviews.parquet")["user_id"].to_list() == ["U1"]


def test_not_json_at_all_stops_with_file_and_line(tmp_path):
    f = tmp_path / "reviews.jsonl"
    f.write_text("user,item,rating\n" * 50)
    with pytest.raises(IngestError, match=r"reviews\.jsonl.*line 1"):
        ingest_dumps([str(f)], None, tmp_path / "w", fmt="2023")
    with pytest.raises(IngestError, match=r"reviews\.jsonl"):
        ingest_dumps([str(f)], None, tmp_path / "w")
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(bytes(range(256)) * 100)
    with pytest.raises(IngestError, match="blob.jsonl"):
        ingest_dumps([str(binary)], None, tmp_path / "w")


def test_truncated_gzip_stops_with_file_and_byte(tmp_path):
    lines = [json.dumps(_review(f"U{i}", f"A{i % 50}", text="y" * (i % 200))) for i in range(20000)]
    full = _write_lines(tmp_path / "full.jsonl.gz", lines)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(IngestError, match=r"cut\.jsonl\.gz: truncated or corrupt gzip.*byte \d+"):
        ingest_dumps([str(cut)], None, tmp_path / "w")


def test_http_download_resumes_after_dropped_connection(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    rng = random.Random(3)
    lines = [
        json.dumps(_review(f"U{i}", f"A{i % 7}", text=f"{rng.getrandbits(512):x}"))
        for i in range(3000)
    ]
    _write_lines(root / "Cat.jsonl.gz", lines)  # ~400 KB of poorly compressible text
    with FaultyServer(root) as srv:
        srv.faults["/Cat.jsonl.gz"] = ["drop", "drop"]
        src = fetch(f"{srv.url}/Cat.jsonl.gz", tmp_path / "cache", backoff=0.01)
        ranges = [r for m, p, r in srv.requests if m == "GET"]
        assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=")
        assert src.path.read_bytes() == (root / "Cat.jsonl.gz").read_bytes()
        stats = ingest_dumps(
            [f"{srv.url}/Cat.jsonl.gz"], None, tmp_path / "w", cache_dir=tmp_path / "cache"
        )
        assert stats["reviews_read"] == 3000
        assert stats["sources"][0]["sha256"] == src.sha256


def test_http_404_is_a_clear_error(tmp_path):
    with FaultyServer(tmp_path) as srv:
        with pytest.raises(FetchError, match=r"404.*|.*HTTP 404"):
            fetch(f"{srv.url}/missing.jsonl.gz", tmp_path / "cache")


def test_sample_generator_is_deterministic(tmp_path):
    from pipeline.io import sha256_file
    from pipeline.sample import SampleSpec, generate_sample

    spec = SampleSpec(n_items=60, n_users=300)
    a = generate_sample(tmp_path / "a", "http://127.0.0.1:9", seed=3, spec=spec, images=False)
    b = generate_sample(tmp_path / "b", "http://127.0.0.1:9", seed=3, spec=spec, images=False)
    for key in ("reviews", "meta"):
        assert sha256_file(a[key]) == sha256_file(b[key]), key


def test_sha256_memo_rehashes_only_changed_files(tmp_path, monkeypatch):
    import hashlib
    import os

    from pipeline.io import sha256_memo

    monkeypatch.setenv("ACMMG_HASH_MEMO", str(tmp_path / "memo.json"))
    f = tmp_path / "dump.jsonl"
    f.write_bytes(b"one\n")
    assert sha256_memo(f) == hashlib.sha256(b"one\n").hexdigest()
    assert json.loads((tmp_path / "memo.json").read_text())  # remembered
    f.write_bytes(b"two!\n")
    os.utime(f, ns=(1, 1))
    assert sha256_memo(f) == hashlib.sha256(b"two!\n").hexdigest()
