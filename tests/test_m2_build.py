"""An Amazon-M2 build end to end (the m2-uk registry entry, the tiny CLIP model): sessions
and products as distributed, no image source, so a text-only folder; published, then read
with the light loader. Plus ``acmmg graph --format m2 --locale UK`` through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import acmmg
from pipeline import build as build_
from pipeline import workdir
from pipeline.errors import UserError
from pipeline.runner import run_all
from tests.test_m2_ingest import oracle, write_m2

# The tiny random-weight model's CLIP-T means nothing: no CLIP-T cut (as the demo).
TINY = {"model": "acmmg-tiny", "pretrained": "", "device": "cpu", "k": 3, "min_clip_t": -100.0,
        "clip_t_percentile": 0.0}  # fmt: skip


def build_m2(tmp: Path, **request) -> tuple[Path, Path]:
    """Run every stage of the m2-uk build in this process (the flow's plan and settings,
    without Prefect); returns (work, published folder)."""
    train, test, products = write_m2(tmp, n=900)
    req = build_.Request(
        reviews=(str(train), str(test)),
        meta=(str(products),),
        work_root=str(tmp / "work"),
        publish_to=str(tmp / "pub"),
        overrides=TINY,
        **request,
    )
    b = build_.plan("m2-uk", req)
    with build_.sources(b) as src:
        run_all(b.work, build_.stage_settings(b, src), log_to=lambda line: None)
    latest = (tmp / "pub" / "m2-uk" / "LATEST").read_text().strip()
    return b.work, tmp / "pub" / "m2-uk" / "versions" / latest


def test_text_only_m2_build_publishes_and_loads(tmp_path):
    work, folder = build_m2(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["modalities"] == ["text"] and manifest["images"] is None
    assert set(manifest["without"]) == {"images", "classes"}
    files = set(manifest["files"])
    assert "images.tar" not in files and "sessions.parquet" in files
    assert not any(f.startswith("embeddings/image_embeds") for f in files)
    assert not (folder / "images.tar").exists()

    # The graph is the sessions' co-occurrence 3-core (no filter rule without images).
    want, n_sessions = oracle(
        [tmp_path / "sessions_train.csv", tmp_path / "sessions_test_task1.csv"], "UK", 3, 3
    )
    stats = json.loads((work / workdir.FILTER_STATS).read_text())
    assert stats["rule"].startswith("text-only") and stats["removed"] == {}

    card = (folder / "README.md").read_text()
    assert "No images (text-only)" in card and "do not apply" in card
    assert "products_train.csv has none" in card and "-1" in card
    assert "| images.tar |" not in card

    cat = acmmg.load_category(folder)
    assert cat.modalities == ["text"]
    assert sorted(cat.embedding_names) == ["combined", "description", "title"]
    asins = cat.nodes.column("asin").to_pylist()
    assert sorted(asins) == sorted({a for e in want for a in e})
    assert cat.edges.num_rows == len(want)
    assert (cat.labels == -1).all() and cat.classes == {}
    assert cat.embeddings("title").shape[0] == len(asins)
    with pytest.raises(UserError, match="text-only"):
        cat.image_bytes(asins[0])

    # sessions.parquet: the work's session list on node ids, in order.
    sessions = pl.from_arrow(cat.sessions)
    work_sessions = pl.read_parquet(work / workdir.SESSIONS)
    assert work_sessions.height == n_sessions
    node_id = {a: i for i, a in enumerate(asins)}
    expected = {
        sid: ([node_id.get(a) for a in items], node_id.get(nxt) if nxt else None)
        for sid, items, nxt in work_sessions.select("session_id", "items", "next_item").iter_rows()
    }
    expected = {
        k: v for k, v in expected.items() if v[1] is not None or any(x is not None for x in v[0])
    }
    got = {s: (i, n) for s, i, n in sessions.select("session_id", "items", "next_item").iter_rows()}
    assert got == expected and len(got) > 50
    assert set(sessions["locale"]) == {"UK"}
    assert manifest["counts"]["sessions"] == len(got)


def test_graph_cli_takes_m2_and_a_locale(tmp_path):
    train, test, products = write_m2(tmp_path, n=500)
    out = tmp_path / "g"
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "graph", "--reviews", str(train), "--reviews",
         str(test), "--format", "m2", "--locale", "UK", "--k", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    want, _ = oracle([train, test], "UK", 3, 3)
    edges = pl.read_parquet(out / workdir.EDGES)
    assert {(a, b): w for a, b, w in edges.iter_rows()} == want
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline", "graph", "--reviews", str(train), "--verified-only",
         "--out", str(tmp_path / "h")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "verified" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_image_url_list_gives_an_m2_build_its_images(tmp_path):
    from pipeline.sample_images import render_item_image
    from tests.image_server import ImageServer, static

    server = ImageServer()
    try:
        placeholder = "/images/G/01/digital/video/web/Default_Background_Art_LTR._SX1080_FMjpg_.jpg"
        rows = []
        for i in range(45):
            jpg = render_item_image(f"B{i:09d}", "Things", f"thing {i}", seed=i, size=(160, 120))[0]
            rows.append([f"B{i:09d}", server.add(f"/images/I/{i}x._AC_SY879_.jpg", static(jpg))])
        rows[2][1] = server.base + placeholder  # refused by rule, never fetched
        urls = tmp_path / "product_image_urls.csv"
        urls.write_text(
            "product_id,image_url\n" + "".join(f"{a},{u}\n" for a, u in rows), encoding="utf-8"
        )
        work, folder = build_m2(
            tmp_path,
            image_urls=(str(urls),),
            allow_private=("127.0.0.1/32",),
        )
    finally:
        server.close()
    assert server.hits.get(placeholder, 0) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["modalities"] == ["image", "text"] and "without" in manifest
    assert "images" not in manifest["without"]
    assert (folder / "images.tar").exists() and (folder / "embeddings/image_embeds.npy").exists()
    stats = json.loads(workdir.stats_file(work, "ingest").read_text())
    assert stats["image_urls_rejected_by_reason"] == {"placeholder_url": 1}
    cat = acmmg.load_category(folder)
    asins = cat.nodes.column("asin").to_pylist()
    assert "B000000002" not in asins  # its only URL was a placeholder: no usable image
    assert manifest["counts"]["images"] == len(asins) > 0
    assert cat.image(asins[0]).size[0] > 0
    # images.parquet keeps the list's URL; the fetched one is its full-size form.
    img = pl.read_parquet(work / workdir.IMAGES).filter(pl.col("status") == "ok")
    assert img["url"].str.contains("._AC_SY879_", literal=True).all()


def test_acmmg_build_cli_publishes_a_text_only_m2_folder(tmp_path):
    """``acmmg build m2-uk`` as a user runs it (the Prefect flow, a temporary server)."""
    import os

    train, test, products = write_m2(tmp_path, n=600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "m2-uk", "--reviews", str(train),
         "--reviews", str(test), "--meta", str(products), "--locale", "UK",
         "--publish-to", str(tmp_path / "pub"), "--work-root", str(tmp_path / "work"),
         "--device", "cpu", "--set", "model=acmmg-tiny", "--set", "pretrained=",
         "--set", "k=3"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    cat = acmmg.load_category(tmp_path / "pub" / "m2-uk", cache_dir=tmp_path / "cache")
    assert cat.modalities == ["text"] and "image" not in cat.embedding_names
    assert cat.sessions is not None and cat.sessions.num_rows > 0
    assert "No images (text-only)" in cat.path("README.md").read_text()
