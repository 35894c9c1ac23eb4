"""The Electronics-shaped profile sample: real ingest and graph on a tiny scale, its shape,
deterministic bytes, and the ``acmmg sample --profile`` command (with ``--serve``)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline import stats as stage_stats
from pipeline.clean import CleanParams
from pipeline.cli import main
from pipeline.graph import GraphParams
from pipeline.runner import run_stage
from pipeline.sample_profile import (
    LEAVES,
    PLACEHOLDER,
    PROFILES,
    Model,
    generate_profile,
)
from pipeline.stages import CLEAN, GRAPH
from tests.stage_helpers import ingest_dumps

SCALE = 0.0005  # 800 items, 9,150 users, ~21 k reviews
BASE = "http://127.0.0.1:9"


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """One sample, ingested, cleaned and built into the graph with the pipeline's defaults."""
    root = tmp_path_factory.mktemp("profile")
    summary = generate_profile(root / "out", scale=SCALE, seed=3, base_url=BASE)
    work = root / "work"
    ingested = ingest_dumps([summary["reviews"]], [summary["meta"]], work)
    run_stage(CLEAN, work, CleanParams())
    run_stage(GRAPH, work, GraphParams())
    stats = {**ingested, **stage_stats.merged(work)}
    return {"summary": summary, "out": root / "out", "work": work, "stats": stats}


def test_the_real_ingest_reads_every_planted_line(built) -> None:
    s, stats = built["summary"], built["stats"]
    assert s["items"] == 800 and s["users"] == 9150
    assert (
        stats["reviews_read"] == s["reviews_written"] + s["duplicate_lines"] + s["malformed_lines"]
    )
    assert stats["reviews_rejected"] == s["malformed_lines"]
    assert stats["duplicates_dropped"] == s["duplicate_lines"]
    planted = s["items_no_title"] + s["items_no_description"] + s["items_no_image"]
    assert stats["clean"]["items_unusable"] == planted
    assert stats["clean"]["items_usable"] == s["items"] - planted


def test_graph_is_non_empty_and_every_node_has_an_image(built) -> None:
    stats = built["stats"]
    assert stats["nodes"] >= 50 and stats["edges"] >= 5 * stats["nodes"] / 2
    nodes = pl.read_parquet(built["work"] / "nodes.parquet")["asin"].to_list()
    items = pl.read_parquet(built["work"] / "items.parquet").filter(pl.col("asin").is_in(nodes))
    images = built["out"] / "images"
    placeholder = f"{BASE}/images/{PLACEHOLDER}"
    missing = [
        a
        for a, url in zip(items["asin"], items["image_url"], strict=True)
        if url != placeholder and not (images / f"{a}.jpg").exists()
    ]
    # Only the planted broken-image items (1%) may lack their file.
    assert len(missing) <= built["summary"]["items_broken_image"]
    # ... and images are rendered for candidates only, not for the whole catalogue.
    rendered = len(list(images.glob("B0*.jpg")))
    assert rendered == built["summary"]["images_rendered"]
    assert len(nodes) - len(missing) <= rendered < built["summary"]["items"] / 2


def test_taxonomy_depth_and_classes(built) -> None:
    items = pl.read_parquet(built["work"] / "items.parquet")
    depth = items["categories"].list.len()
    assert depth.min() >= 3 and depth.max() == 6  # 2 to 5 levels under "Electronics"
    assert set(items["categories"].list.first()) == {"Electronics"}
    level2 = items["categories"].list.get(2).value_counts()
    assert level2.height >= 20  # the demo's class level has a real choice
    assert {len(leaf.path) for leaf in LEAVES} == {3, 4, 5, 6}


def test_items_per_user_and_popularity(built) -> None:
    reviews = pl.read_parquet(built["work"] / "reviews.parquet")
    per_user = reviews.group_by("user_id").len()["len"].to_numpy()
    assert 2.2 <= per_user.mean() <= 2.6
    assert 0.6 <= (per_user == 1).mean() <= 0.8
    assert per_user.max() >= 20  # the power-user tail
    counts = np.sort(reviews.group_by("asin").len()["len"].to_numpy())[::-1]
    rank = np.arange(1, len(counts) + 1)
    head = slice(0, len(counts) // 10)
    slope = np.polyfit(np.log(rank[head]), np.log(counts[head]), 1)[0]
    assert -1.6 < slope < -0.3  # Zipf-like
    assert counts[: len(counts) // 100].sum() > 0.08 * counts.sum()


def test_line_formats_look_like_the_2023_dumps(built) -> None:
    with gzip.open(built["summary"]["reviews"], "rt") as f:
        review = json.loads(f.readline())
    assert list(review) == [
        "rating",
        "title",
        "text",
        "images",
        "asin",
        "parent_asin",
        "user_id",
        "timestamp",
        "helpful_vote",
        "verified_purchase",
    ]
    assert len(review["user_id"]) == 28 and review["parent_asin"].startswith("B0")
    with gzip.open(built["summary"]["meta"], "rt") as f:
        lines = [json.loads(line) for line in f]
    sizes = [len(json.dumps(rec)) for rec in lines]
    assert 1500 < np.mean(sizes) < 5000  # a few KB, like the real metadata
    main_image = lines[0]["images"][0]
    assert main_image["variant"] == "MAIN" and main_image["large"].startswith(f"{BASE}/images/")
    with gzip.open(built["summary"]["reviews"], "rb") as f:
        mean = np.mean([len(line) for line in f])
    assert 300 < mean < 1000


def test_bytes_do_not_depend_on_workers_and_reruns_keep_images(tmp_path, built) -> None:
    a = generate_profile(tmp_path / "a", scale=SCALE, seed=3, base_url=BASE, workers=2)
    assert _digest(tmp_path / "a") == _digest(built["out"])
    assert a == {**built["summary"], "reviews": a["reviews"], "meta": a["meta"]}
    image = next((tmp_path / "a" / "images").glob("B0*.jpg"))
    before = image.stat().st_mtime_ns
    generate_profile(tmp_path / "a", scale=SCALE, seed=3, base_url=BASE)
    assert image.stat().st_mtime_ns == before  # rendered once
    assert _digest(tmp_path / "a") == _digest(built["out"])
    other = generate_profile(tmp_path / "b", scale=SCALE, seed=4, base_url=BASE, images=False)
    assert other["reviews_bytes"] != a["reviews_bytes"]
    assert not list((tmp_path / "b" / "images").glob("*.jpg"))


def test_model_sizes_follow_the_scale() -> None:
    spec = PROFILES["electronics"]
    m = Model(spec, 0.1, 0)
    assert (m.n_users, m.n_items) == (1_830_000, 160_000)
    assert m.max_degree == spec.max_items_per_user
    asins = m.asins(np.arange(m.n_items))
    assert len(set(asins)) == m.n_items
    assert all(len(a) == 10 and a.startswith("B0") for a in asins[:100])


def test_cli_profile(tmp_path, capsys) -> None:
    out = tmp_path / "s"
    assert main(["sample", "--profile", "electronics", "--scale", "0.0002", "--out", str(out),
                 "--no-images", "--workers", "1"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 320 and Path(summary["reviews"]).exists()
    assert not (out / "images" / PLACEHOLDER).exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "books"], "unknown profile 'books'"),
        (["--profile", "electronics", "--scale", "0.00001"], "the smallest scale"),
        (["--profile", "electronics", "--items", "10"], "--items and --users"),
        (["--serve", "--base-url", "http://example.com:80"], "--serve needs"),
    ],
)
def test_cli_errors(tmp_path, capsys, argv, message) -> None:
    assert main(["sample", "--out", str(tmp_path / "x"), "--no-images", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_serve(tmp_path) -> None:
    """``--serve`` with port 0: the URLs name the port it got, and the files are served."""
    out = tmp_path / "served"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "pipeline", "sample", "--profile", "electronics", "--scale",
           "0.0002", "--workers", "1", "--out", str(out), "--base-url", "http://127.0.0.1:0",
           "--serve"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line, "the command ended before serving"
        base = line.split(" at ")[1].split("/ ")[0]
        port = int(base.rsplit(":", 1)[1])
        assert base.startswith("http://127.0.0.1:") and port > 1024  # an ephemeral port
        with urllib.request.urlopen(f"{base}/meta_Electronics.jsonl.gz", timeout=30) as r:
            body = r.read()
        assert body == (out / "meta_Electronics.jsonl.gz").read_bytes()
        first = json.loads(gzip.decompress(body).split(b"\n", 1)[0])
        main_url = first["images"][0]["large"] if first["images"] else base
        assert main_url.startswith(base)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
