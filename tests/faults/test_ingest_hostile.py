"""Hostile and broken dumps through the real fetch + ingest stages (issue 11, items 2 and 7):
every case is either read correctly, counted by the right reason, or refused in one line;
never a traceback, never a silent loss. Real files, real DuckDB."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest import IngestError
from pipeline.sources.detect import detect_format, last_line_complete
from tests.faults.namespaces import why_no_tmpfs
from tests.stage_helpers import ingest_dumps

ROOT = Path(__file__).resolve().parents[2]


def review(user: str = "U1", asin: str = "A1", **kw) -> dict:
    rec = {
        "rating": 5.0,
        "title": "t",
        "text": "x",
        "asin": asin,
        "parent_asin": asin,
        "user_id": user,
        "timestamp": 1_600_000_000_000,
        "helpful_vote": 0,
        "verified_purchase": True,
    }
    rec.update(kw)
    return rec


def good_lines(n: int = 10) -> list[str]:
    return [json.dumps(review(f"U{i}", f"A{i % 3}")) for i in range(n)]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def lines_bytes(lines: list[str]) -> bytes:
    return "".join(ln + "\n" for ln in lines).encode()


def reviews_of(work: Path) -> pl.DataFrame:
    return pl.read_parquet(work / "reviews.parquet").sort("user_id")


def rejects_of(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "rejects.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["cut.jsonl", "cut.jsonl.gz"])
def test_local_dump_with_a_cut_last_line_is_counted_and_flagged(tmp_path, caplog, name):
    lines = good_lines()
    data = lines_bytes(lines) + lines[0][:30].encode()  # the last line stops mid-record
    f = write(tmp_path / name, data)
    assert not last_line_complete(f)
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["rejected_by_reason"] == {"truncated_last_line": 1}
    assert stats["reviews_kept"] == 10
    assert stats["inputs_look_truncated"] == [stats["sources"][0]["uri"]]
    assert any("looks truncated" in r.getMessage() for r in caplog.records)
    [rej] = rejects_of(tmp_path / "w")
    assert rej["reason"] == "truncated_last_line" and rej["raw"] == lines[0][:30]


def test_whole_dump_and_a_bad_middle_line_are_not_flagged_truncated(tmp_path):
    lines = good_lines()
    # No final newline but a last line that parses: complete. A bad line inside: bad_json.
    data = lines_bytes(lines[:5] + ['{"user_id": "U9", '] + lines[5:-1]) + lines[-1].encode()
    stats = ingest_dumps([str(write(tmp_path / "r.jsonl", data))], None, tmp_path / "w")
    assert stats["rejected_by_reason"] == {"bad_json": 1}
    assert "inputs_look_truncated" not in stats


def test_first_line_over_256_kb_does_not_make_the_file_not_json(tmp_path):
    big = json.dumps(review("UB", "AB", text="y" * 300_000))
    f = write(tmp_path / "big.jsonl", lines_bytes([big, *good_lines()]))
    assert detect_format(f) == "2023"
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["reviews_rejected"] == 0 and stats["reviews_kept"] == 11
    assert len(reviews_of(tmp_path / "w").filter(pl.col("user_id") == "UB")["text"][0]) == 300_000


def test_line_over_the_16_mb_bound_is_counted_not_fatal(tmp_path):
    huge = json.dumps(review("UH", "AH", text="y" * (17 << 20)))
    f = write(tmp_path / "huge.jsonl", lines_bytes([huge, *good_lines()]))
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["rejected_by_reason"] == {"oversize_line": 1}
    assert stats["reviews_kept"] == 10


def test_deeply_nested_first_line_is_a_bad_line_not_a_recursion_error(tmp_path):
    f = write(tmp_path / "deep.jsonl", lines_bytes(["[" * 100_000, *good_lines()]))
    assert detect_format(f) == "2023"
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["rejected_by_reason"] == {"bad_json": 1} and stats["reviews_kept"] == 10
    only = write(tmp_path / "only.jsonl", lines_bytes(["[" * 100_000, "{" * 100_000]))
    with pytest.raises(IngestError, match=r"only\.jsonl: not JSON lines: line 1"):
        ingest_dumps([str(only)], None, tmp_path / "w2")
    arr = write(tmp_path / "arr.json", b"[" + b"{" + b'"a":[' * 100_000)
    with pytest.raises(IngestError, match=r"arr\.json: not a JSON array"):
        ingest_dumps([str(arr)], None, tmp_path / "w3")


def test_bare_cr_between_tokens_does_not_split_lines(tmp_path, caplog):
    lines = [ln.replace(', "title"', ',\r"title"') for ln in good_lines()]
    f = write(tmp_path / "cr.jsonl.gz", lines_bytes(lines))
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["reviews_read"] == 10 and stats["reviews_rejected"] == 0
    assert stats["inputs_with_bare_cr"] == [stats["sources"][0]["uri"]]
    assert reviews_of(tmp_path / "w")["title"].to_list() == ["t"] * 10
    # CRLF line ends are only line ends: nothing to repair, nothing noted.
    crlf = write(tmp_path / "crlf.jsonl", "".join(ln + "\r\n" for ln in good_lines()).encode())
    stats = ingest_dumps([str(crlf)], None, tmp_path / "w2")
    assert stats["reviews_kept"] == 10 and "inputs_with_bare_cr" not in stats


def test_json_array_with_a_bom_is_read_like_jsonl_with_a_bom(tmp_path):
    bom = b"\xef\xbb\xbf"
    arr = write(tmp_path / "a.json", bom + b"[" + ",\n".join(good_lines()).encode() + b"]\n")
    jsl = write(tmp_path / "l.jsonl", bom + lines_bytes(good_lines()))
    a = ingest_dumps([str(arr)], None, tmp_path / "wa")
    b = ingest_dumps([str(jsl)], None, tmp_path / "wb")
    assert a["reviews_kept"] == b["reviews_kept"] == 10
    assert a["reviews_rejected"] == b["reviews_rejected"] == 0
    assert reviews_of(tmp_path / "wa").equals(reviews_of(tmp_path / "wb"))


def test_duplicate_keys_are_a_reject_reason(tmp_path):
    dup = '{"user_id":"A","user_id":"B","parent_asin":"A1","rating":1,"timestamp":1}'
    f = write(tmp_path / "r.jsonl", lines_bytes([*good_lines(), dup]))
    meta = write(
        tmp_path / "meta.jsonl",
        lines_bytes(['{"parent_asin":"A0","title":"a"}', '{"parent_asin":"A1","parent_asin":"X"}']),
    )
    stats = ingest_dumps([str(f)], [str(meta)], tmp_path / "w", fmt="2023")
    assert stats["rejected_by_reason"] == {"duplicate_key": 1}
    assert stats["items_rejected_by_reason"] == {"duplicate_key": 1}
    assert "A" not in reviews_of(tmp_path / "w")["user_id"].to_list()


def test_mixed_2018_and_2023_lines_are_rejected_as_other_format(tmp_path):
    r2018 = {"reviewerID": "R1", "asin": "A1", "overall": 4.0, "unixReviewTime": 1_600_000_000}
    f = write(tmp_path / "mixed.jsonl", lines_bytes([*good_lines(), json.dumps(r2018)]))
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["rejected_by_reason"] == {"other_format": 1}
    lines2018 = [json.dumps({**r2018, "reviewerID": f"R{i}"}) for i in range(10)]
    g = write(tmp_path / "mixed18.jsonl", lines_bytes([*lines2018, good_lines()[0]]))
    stats = ingest_dumps([str(g)], None, tmp_path / "w2")
    assert stats["rejected_by_reason"] == {"other_format": 1} and stats["reviews_kept"] == 10


def test_a_lone_surrogate_is_replaced_and_counted_not_a_lost_review(tmp_path):
    lone = json.dumps(review("US", "A1", text="a")).replace('"a"', r'"a\ud800b\ud83d\ude00c"')
    f = write(tmp_path / "r.jsonl", lines_bytes([*good_lines(), lone]))
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["reviews_rejected"] == 0 and stats["reviews_kept"] == 11
    assert stats["lone_surrogates_replaced"] == 1
    text = reviews_of(tmp_path / "w").filter(pl.col("user_id") == "US")["text"][0]
    assert text == "a\ufffdb\U0001f600c"  # the valid pair stays an emoji


def test_nan_and_infinite_ratings_are_rejected_not_stored(tmp_path):
    bad = [
        json.dumps(review("UN", rating=float("nan"))),
        json.dumps(review("UI", rating=float("inf"))),
        json.dumps(review("UM", rating=float("-inf"))),
    ]
    f = write(tmp_path / "r.jsonl", lines_bytes([*good_lines(), *bad]))
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["rejected_by_reason"] == {"bad_rating": 3}
    assert reviews_of(tmp_path / "w")["rating"].is_nan().sum() == 0
    csv = write(tmp_path / "r.csv", b"A1,U1,5,1600000000\nA1,U2,nan,1600000000\nA2,U3,inf,1\n")
    stats = ingest_dumps([str(csv)], None, tmp_path / "w2")
    assert stats["rejected_by_reason"] == {"bad_rating": 2} and stats["reviews_kept"] == 1


def test_dedupe_keeps_the_same_winner_and_counts(tmp_path):
    same = review("U1", "A1", text="b", helpful_vote=2)
    lines = [
        json.dumps(same),
        json.dumps(same),  # exact duplicate
        json.dumps({**same, "text": "a"}),  # same ids, time, rating, votes: smaller text wins
        json.dumps({**same, "verified_purchase": False, "user_id": "U2"}),
    ]
    f = write(tmp_path / "r.jsonl", lines_bytes(lines))
    stats = ingest_dumps([str(f)], None, tmp_path / "w")
    assert stats["duplicates_dropped"] == 1 and stats["repeat_reviews_dropped"] == 1
    assert reviews_of(tmp_path / "w")["text"].to_list() == ["a", "b"]
    stats = ingest_dumps([str(f)], None, tmp_path / "v", verified_only=True)
    assert stats["unverified_dropped"] == 1 and stats["reviews_kept"] == 1


@pytest.mark.skipif((why := why_no_tmpfs()) is not None, reason=f"no real full disk here: {why}")
def test_full_output_disk_is_no_space_left_not_input_cannot_be_read(tmp_path):
    # The dump lives outside; the work directory on a 512 KB tmpfs mounted in a private
    # mount namespace (nothing outside the test sees it) fills up while staging.
    lines = [json.dumps(review(f"U{i}", f"A{i % 97}", text=f"{i:x}" * 200)) for i in range(20000)]
    dump = write(tmp_path / "r.jsonl", lines_bytes(lines))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cmd = (
        f"mount -t tmpfs -o size=512k tmpfs {mnt} && cd {mnt} && "
        f"env PYTHONPATH={ROOT} ACMMG_DUCKDB_TEMP= {sys.executable} -m pipeline.cli graph "
        f"--reviews {dump} --out {mnt}/work"
    )
    r = subprocess.run(
        ["unshare", "-m", "--", "bash", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.strip().splitlines() if " INFO " not in ln]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "no space left writing" in errors[0] and f"{mnt}/work" in errors[0], errors[0]
    assert "cannot be read" not in errors[0]


def test_json_array_elements_large_and_over_the_bound(tmp_path):
    small = [json.dumps(review(f"U{i}")) for i in range(5)]
    big = json.dumps(review("UB", text="y" * 300_000))  # the first element over 256 KB: read
    arr = write(tmp_path / "a.json", ("[" + ",".join([big, *small]) + "]").encode())
    assert ingest_dumps([str(arr)], None, tmp_path / "w")["reviews_kept"] == 6
    huge = json.dumps(review("UH", text="y" * (17 << 20)))
    cut = write(tmp_path / "h.json", ("[" + ",".join([huge, *small]) + "]").encode())
    with pytest.raises(IngestError, match=r"h\.json: the first JSON array element is over"):
        ingest_dumps([str(cut)], None, tmp_path / "w2")


def test_a_cut_json_array_is_refused_as_truncated(tmp_path):
    whole = "[" + ",".join(good_lines()) + "]"
    f = write(tmp_path / "cut.json", whole[:-20].encode())
    with pytest.raises(IngestError, match=r"cut\.json: looks truncated: the JSON array breaks off"):
        ingest_dumps([str(f)], None, tmp_path / "w")


def test_memory_limit_too_small_is_one_line_not_input_cannot_be_read(tmp_path, monkeypatch):
    # DuckDB's line reader takes a buffer the size of a small file whole: 4 MB is too little.
    monkeypatch.setenv("ACMMG_DUCKDB_MEMORY", "4MB")
    lines = [json.dumps(review(f"U{i}", text="y" * 500)) for i in range(10_000)]
    f = write(tmp_path / "r.jsonl", lines_bytes(lines))
    with pytest.raises(IngestError, match=r"r\.jsonl: out of memory .*ACMMG_DUCKDB_MEMORY"):
        ingest_dumps([str(f)], None, tmp_path / "w")
