"""The image stage against a real HTTP server on 127.0.0.1 serving generated images."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from pipeline.images import ImageConfig, Rejected, fetch_images, normalize_image
from pipeline.images.fetch import is_transient, parse_retry_after
from pipeline.images.safety import AddressPolicy, UrlRejected
from pipeline.images.stage import JOURNAL_DIR
from pipeline.sample_images import render_item_image, render_placeholder, render_scene
from pipeline.workdir import image_store_path
from tests.image_server import (
    ImageServer,
    chunked,
    closed_port,
    fail_first,
    local_config,
    make_work,
    redirect,
    slow,
    static,
    status,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    s = ImageServer()
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------
# Generated images.


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    scene = render_scene("G1", "Speakers", "Portable Speaker", size=(800, 600))
    pal = Image.new("P", (240, 200), 0)
    pal.putpalette([0, 0, 0, 200, 30, 30, 30, 30, 200] + [0] * (256 * 3 - 9))
    pal.paste(1, (40, 40, 120, 160))
    pal.paste(2, (130, 40, 200, 160))
    gray16 = Image.fromarray(np.tile(np.linspace(0, 65535, 300), (200, 1)).astype(np.uint16))
    bomb = Image.new("1", (9_000, 9_000), 0)  # 81 M pixels in ~10 kB of PNG
    return {
        "jpg": render_item_image("G1", "Speakers", "Speaker", size=(800, 600), fmt="jpg")[0],
        "png": render_item_image("G2", "Cables", "Cable", size=(640, 480), fmt="png")[0],
        "webp": render_item_image("G3", "Headphones", "Phones", size=(700, 700), fmt="webp")[0],
        "cmyk": _jpeg(scene.convert("CMYK"), quality=90),
        "palette_alpha": _png(pal, transparency=0),
        "gray16": _png(gray16),
        "exif": render_item_image(
            "G4", "Speakers", "Speaker", size=(600, 400), fmt="jpg-exif-rotated"
        )[0],
        "tiny": _jpeg(scene.resize((50, 40))),
        "bomb": _png(bomb, optimize=False),
        "placeholder": render_placeholder(),
        "big": os.urandom(3_000_000),
    }


# ---------------------------------------------------------------------------------------------
# The whole stage over every kind of answer.


@pytest.fixture(scope="module")
def cases(server: ImageServer, images: dict[str, bytes]) -> dict[str, tuple[str | None, str]]:
    """asin -> (url, expected status)."""
    s, im = server, images
    c: dict[str, tuple[str | None, str]] = {
        "A01_jpg": (s.add("/c/good.jpg", static(im["jpg"])), "ok"),
        "A02_png": (s.add("/c/good.png", static(im["png"], "image/png")), "ok"),
        "A03_webp": (s.add("/c/good.webp", static(im["webp"], "image/webp")), "ok"),
        "A04_cmyk": (s.add("/c/cmyk.jpg", static(im["cmyk"])), "ok"),
        "A05_palette": (s.add("/c/pal.png", static(im["palette_alpha"], "image/png")), "ok"),
        "A06_gray16": (s.add("/c/g16.png", static(im["gray16"], "image/png")), "ok"),
        "A07_exif": (s.add("/c/exif.jpg", static(im["exif"])), "ok"),
        "A08_truncated": (
            s.add("/c/trunc.jpg", static(im["jpg"][: len(im["jpg"]) // 2])),
            "truncated",
        ),
        "A09_empty": (s.add("/c/empty.jpg", static(b"")), "not_image"),
        "A10_html": (s.add("/c/page.jpg", static(b"<html>hi</html>", "text/html")), "not_image"),
        "A11_html_as_jpeg": (s.add("/c/fake.jpg", static(b"<html>hi</html>" * 20)), "not_image"),
        "A12_404": (s.base + "/c/missing.jpg", "http_404"),
        "A13_500_then_ok": (s.add("/c/flaky.jpg", fail_first(500, im["jpg"])), "ok"),
        "A14_429": (
            s.add("/c/limited.jpg", fail_first(429, im["png"], {"Retry-After": "1"})),
            "ok",
        ),
        "A15_503_always": (s.add("/c/down.jpg", status(503)), "http_error"),
        "A16_403": (s.add("/c/forbidden.jpg", status(403)), "http_error"),
        "A17_slow": (s.add("/c/slow.jpg", slow(1.5, im["jpg"])), "timeout"),
        "A18_bomb": (s.add("/c/bomb.png", static(im["bomb"], "image/png")), "decompression_bomb"),
        "A19_big": (s.add("/c/big.jpg", static(im["big"])), "too_large"),
        "A20_big_chunked": (s.add("/c/bigchunked.jpg", chunked(im["big"])), "too_large"),
        "A21_redirect_private": (
            s.add("/c/to-private.jpg", redirect("http://10.1.2.3/img.jpg")),
            "blocked_address",
        ),
        "A22_redirect_ok": (s.add("/c/moved.jpg", redirect("/c/good.png")), "ok"),
        "A23_private": ("http://192.168.0.10/img.jpg", "blocked_address"),
        "A24_metadata": ("http://169.254.169.254/latest/meta-data", "blocked_address"),
        "A25_ftp": ("ftp://example.com/img.jpg", "bad_scheme"),
        "A26_no_url": (None, "no_url"),
        "A27_tiny": (s.add("/c/tiny.jpg", static(im["tiny"])), "too_small"),
        "A28_refused": (f"http://127.0.0.1:{closed_port()}/x.jpg", "connection_error"),
        "A29_loop": (s.add("/c/loop.jpg", redirect("/c/loop.jpg")), "too_many_redirects"),
        "A30_dup_a": (s.add("/c/dup.jpg", static(im["webp"], "image/webp")), "ok"),
        "A31_dup_b": (s.base + "/c/dup.jpg", "ok"),
    }
    # A placeholder served for many items: five URLs, and one URL shared by two items.
    for i in range(5):
        c[f"P{i}"] = (s.add(f"/c/ph{i}.jpg", static(im["placeholder"])), "placeholder")
    shared = s.add("/c/ph-shared.jpg", static(im["placeholder"]))
    c["P5"] = (shared, "placeholder")
    c["P6"] = (shared, "placeholder")
    return c


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, server, cases) -> tuple[Path, dict, Counter[str], float]:
    work = make_work(tmp_path_factory.mktemp("stage"), {a: u for a, (u, _) in cases.items()})
    t = time.monotonic()
    summary = fetch_images(work, config=local_config())
    return work, summary, server.snapshot(), time.monotonic() - t


def test_every_case_gets_its_status(first_run, cases) -> None:
    work, summary, _, _ = first_run
    rows = pl.read_parquet(work / "images.parquet")
    got = dict(zip(rows["asin"], rows["status"], strict=True))
    expected = {a: st for a, (_, st) in cases.items()}
    assert got == expected
    assert rows["asin"].to_list() == sorted(rows["asin"].to_list())
    by = {r["asin"]: r for r in rows.to_dicts()}
    assert by["A12_404"]["http_status"] == 404
    assert by["A15_503_always"]["http_status"] == 503
    assert by["A16_403"]["http_status"] == 403
    assert by["A21_redirect_private"]["error"].endswith("non-public address 10.1.2.3")
    assert by["P0"]["error"] == "image shared by 7 items"
    assert by["A30_dup_a"]["sha256"] == by["A31_dup_b"]["sha256"]  # 2 <= threshold: kept
    # The stage's stats are the summary without what this one invocation did.
    stats = {k: v for k, v in summary.items() if k != "this_run"}
    assert stats["candidates"] == len(cases)
    assert stats["placeholder"] == 7 and stats["placeholder_images"] == 1
    n_ok = sum(1 for _, st in cases.values() if st == "ok")
    assert stats["ok"] == n_ok
    assert stats["failed"]["blocked_address"] == 3
    assert stats["failed_total"] == len(cases) - n_ok - 7
    assert summary["this_run"]["attempted"] == len({u for u, _ in cases.values() if u})


def test_stored_images_are_normalised(first_run) -> None:
    work, _, _, _ = first_run
    rows = pl.read_parquet(work / "images.parquet").filter(
        pl.col("status").is_in(["ok", "placeholder"])
    )
    cfg = local_config()
    for r in rows.to_dicts():
        path = image_store_path(work, r["sha256"])
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        im = Image.open(path)
        assert im.format == "JPEG" and im.mode == "RGB"
        assert (im.width, im.height) == (r["width"], r["height"])
        assert max(im.size) <= cfg.max_side
        assert r["bytes"] > 0
    by = {r["asin"]: r for r in rows.to_dicts()}
    # EXIF orientation applied: stored 400x600 turned, displayed 600x400 (kept: under the
    # default max_side of 1024).
    assert (by["A07_exif"]["orig_width"], by["A07_exif"]["orig_height"]) == (600, 400)
    assert (by["A07_exif"]["width"], by["A07_exif"]["height"]) == (600, 400)
    # Small images are not enlarged.
    assert (by["A05_palette"]["width"], by["A05_palette"]["height"]) == (240, 200)
    # Palette + alpha: the transparent background becomes white.
    pal = Image.open(image_store_path(work, by["A05_palette"]["sha256"])).convert("RGB")
    assert all(abs(c - 255) <= 3 for c in pal.getpixel((5, 5)))
    assert pal.getpixel((80, 100))[0] > 150  # the red block survives
    # 16-bit grey is scaled, not clipped: the left edge is dark, the right edge bright.
    g = Image.open(image_store_path(work, by["A06_gray16"]["sha256"])).convert("L")
    assert g.getpixel((2, 100)) < 20 and g.getpixel((g.width - 3, 100)) > 230


def test_retries_and_retry_after(first_run, server) -> None:
    _, _, hits, _ = first_run
    assert hits["/c/flaky.jpg"] == 2  # 500, then the retry succeeds
    assert hits["/c/limited.jpg"] == 2
    t = server.times["/c/limited.jpg"]
    assert t[1] - t[0] >= 0.95  # Retry-After: 1 respected
    assert hits["/c/down.jpg"] == 2  # 1 + retries
    assert hits["/c/slow.jpg"] == 2
    assert hits["/c/forbidden.jpg"] == 1  # other 4xx: no retry
    assert hits["/c/missing.jpg"] == 1
    assert hits["/c/ph-shared.jpg"] == 1  # one fetch per distinct URL
    assert hits["/c/dup.jpg"] == 1
    assert hits["/c/good.png"] == 2  # direct, and behind /c/moved.jpg


def test_rerun_fetches_nothing_new(first_run, server, cases) -> None:
    work, _, before, _ = first_run
    out = work / "images.parquet"
    first_bytes = out.read_bytes()
    # Default rerun: only transient failures are tried again.
    s = fetch_images(work, config=local_config())
    after = server.snapshot()
    delta = {p: after[p] - before[p] for p in after if after[p] != before[p]}
    assert set(delta) == {"/c/slow.jpg", "/c/down.jpg"}  # (+ the refused port: no server)
    assert s["this_run"]["attempted"] == 3  # timeout, 503, connection refused
    assert s["this_run"]["skipped"] == len(cases) - 3
    assert out.read_bytes() == first_bytes
    # With retry_transient off nothing at all is fetched, and the output is byte-identical.
    s = fetch_images(work, config=local_config(retry_transient=False))
    assert s["this_run"]["attempted"] == 0
    assert server.snapshot() == after
    assert out.read_bytes() == first_bytes
    assert len(list((work / JOURNAL_DIR).glob("part-*.parquet"))) == 1  # compacted


def test_missing_store_file_and_changed_settings_refetch(tmp_path, server, images) -> None:
    url = server.add("/r/a.jpg", static(images["jpg"]))
    url2 = server.add("/r/b.jpg", static(images["png"], "image/png"))
    work = make_work(tmp_path, {"X1": url, "X2": url2})
    cfg = local_config(retry_transient=False)
    fetch_images(work, config=cfg)
    rows = pl.read_parquet(work / "images.parquet")
    image_store_path(work, rows["sha256"][0]).unlink()
    s = fetch_images(work, config=cfg)
    assert s["this_run"]["attempted"] == 1 and server.hits["/r/a.jpg"] == 2
    # A setting that changes results (max_side) redoes every row.
    s = fetch_images(work, config=replace(cfg, max_side=128))
    assert s["this_run"]["attempted"] == 2
    rows = pl.read_parquet(work / "images.parquet")
    assert rows["width"].to_list() == [128, 128]
    # A new URL for an item is fetched; its neighbour is not.
    url3 = server.add("/r/c.jpg", static(images["webp"], "image/webp"))
    make_work(tmp_path, {"X1": url3, "X2": url2})
    s = fetch_images(work, config=replace(cfg, max_side=128))
    assert s["this_run"]["attempted"] == 1 and server.hits["/r/c.jpg"] == 1


def test_items_clean_is_preferred(tmp_path, server, images) -> None:
    good = server.add("/ic/good.jpg", static(images["jpg"]))
    work = make_work(tmp_path, {"Y1": server.base + "/ic/missing.jpg"})
    pl.DataFrame({"asin": ["Y1"], "image_url": [good]}).write_parquet(work / "items_clean.parquet")
    fetch_images(work, config=local_config())
    assert pl.read_parquet(work / "images.parquet")["status"].to_list() == ["ok"]


def test_dhash_catches_reencoded_placeholders(tmp_path, server, images) -> None:
    ph = Image.open(io.BytesIO(images["placeholder"]))
    urls = {}
    for i, q in enumerate((60, 70, 80, 90, 95)):  # same picture, five different files
        urls[f"Z{i}"] = server.add(f"/dh/{i}.jpg", static(_jpeg(ph, quality=q)))
    urls["Z9"] = server.add("/dh/real.jpg", static(images["jpg"]))
    work = make_work(tmp_path, urls)
    fetch_images(work, config=local_config())
    assert pl.read_parquet(work / "images.parquet")["status"].to_list() == ["ok"] * 6
    fetch_images(work, config=local_config(placeholder_hash="dhash"))
    st = pl.read_parquet(work / "images.parquet")["status"].to_list()
    assert st == ["placeholder"] * 5 + ["ok"]


def test_worker_processes_give_identical_output(tmp_path, server, images, cases) -> None:
    keep = [a for a, (_, st) in cases.items() if st not in ("timeout", "http_error")]
    urls = {a: cases[a][0] for a in keep if "429" not in a and "500" not in a}
    w1 = make_work(tmp_path / "one", urls)
    w2 = make_work(tmp_path / "two", urls)
    fetch_images(w1, config=local_config(processes=1))
    s = fetch_images(w2, config=local_config(processes=2, threads=4, chunk_size=4))
    assert s["this_run"]["processes"] == 2
    assert (w1 / "images.parquet").read_bytes() == (w2 / "images.parquet").read_bytes()


_KILL_SCRIPT = """
import json, sys
from pathlib import Path
from pipeline.images import ImageConfig, fetch_images
cfg = ImageConfig(**json.loads(sys.argv[2]))
fetch_images(Path(sys.argv[1]), config=cfg)
"""


def test_resume_after_sigkill_loses_nothing(tmp_path, server, images) -> None:
    urls = {f"K{i:03d}": server.add(f"/k/{i}.jpg", slow(0.08, images["jpg"])) for i in range(60)}
    work = make_work(tmp_path, urls)
    cfg = {
        "allow_private": ["127.0.0.1/32"],
        "threads": 2,
        "processes": 1,
        "chunk_size": 4,
        "read_timeout": 5.0,
        "placeholder_threshold": 100,  # all 60 serve the same picture
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(work), json.dumps(cfg)], cwd=ROOT
    )
    journal = work / JOURNAL_DIR
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(journal.glob("part-*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = pl.concat([pl.read_parquet(p) for p in journal.glob("part-*.parquet")])
    assert 8 <= done.height < 60, "the kill should land mid-run"
    assert not (work / "images.parquet").exists()
    s = fetch_images(work, config=ImageConfig(**{**cfg, "allow_private": ("127.0.0.1/32",)}))
    assert s["ok"] == 60, (s, pl.read_parquet(work / "images.parquet").head(3).to_dicts())
    assert s["this_run"]["attempted"] == 60 - done.height
    for asin in done["asin"]:
        assert server.hits[f"/k/{int(asin[1:])}.jpg"] == 1  # journaled work is never redone


def test_cli(tmp_path, server, images, capsys) -> None:
    from pipeline.cli import main

    url = server.add("/cli/a.jpg", static(images["jpg"]))
    work = make_work(tmp_path, {"C1": url, "C2": server.base + "/cli/none.jpg"})
    nodes = work / "nodes.parquet"
    rc = main(
        ["images", "--work", str(work), "--nodes", str(nodes), "--allow-private", "127.0.0.1/32"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "fetched 2 URLs (1 ok, 1 failed" in out and "http_404" in out
    assert main(["images", "--work", str(tmp_path / "nowhere")]) == 2
    assert "candidate nodes not found" in capsys.readouterr().err
    assert main(["images", "--work", str(work), "--max-side", "0"]) == 2
    assert main(["images", "--work", str(work), "--max-aspect", "0.5"]) == 2
    assert main(["images", "--work", str(work), "--total-timeout", "0"]) == 2


# ---------------------------------------------------------------------------------------------
# Units.


def test_normalize_draft_path_matches_full_decode() -> None:
    scene = render_scene("D1", "Lamps", "Desk Lamp", size=(2400, 1800))
    data = _jpeg(scene, quality=92)
    cfg = ImageConfig(max_side=512)
    n = normalize_image(data, cfg)
    assert (n.width, n.height) == (512, 384) and (n.orig_width, n.orig_height) == (2400, 1800)
    ref = scene.resize((512, 384), Image.Resampling.LANCZOS)
    got = Image.open(io.BytesIO(n.jpeg)).convert("RGB")
    assert np.abs(np.asarray(got, float) - np.asarray(ref, float)).mean() < 3
    assert normalize_image(data, cfg).jpeg == n.jpeg  # deterministic


def test_normalize_cmyk_colours() -> None:
    im = Image.new("RGB", (300, 200), (220, 40, 40))
    n = normalize_image(_jpeg(im.convert("CMYK"), quality=95), ImageConfig())
    r, g, b = Image.open(io.BytesIO(n.jpeg)).convert("RGB").getpixel((150, 100))
    assert r > 180 and g < 90 and b < 90


def test_normalize_rejects() -> None:
    import random

    jpg = render_item_image("R1", "Lamps", "Lamp", size=(400, 300), fmt="jpg")[0]
    cases = [
        (b"", "not_image"),
        (b"GIF89a-broken", "not_image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "not_image"),  # EPS is not on the format allow-list
        (jpg[:700] + random.Random(0).randbytes(5000) + jpg[-2:], "corrupt"),
        (jpg[:700] + bytes(5000), "truncated"),
    ]
    for data, expected in cases:
        with pytest.raises(Rejected) as e:
            normalize_image(data, ImageConfig())
        assert e.value.status == expected, (data[:16], e.value.message)


def test_normalize_bomb_checked_before_decoding() -> None:
    big = _png(Image.new("L", (3000, 3000)))
    with pytest.raises(Rejected) as e:
        normalize_image(big, ImageConfig(max_pixels=4_000_000))
    assert e.value.status == "decompression_bomb"
    assert normalize_image(big, ImageConfig()).width == ImageConfig().max_side == 1024


def test_address_policy() -> None:
    p = AddressPolicy()
    for ip in ["10.0.0.1", "127.0.0.1", "169.254.169.254", "192.168.1.1", "172.16.0.1",
               "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1",
               "224.0.0.1"]:  # fmt: skip
        assert not p.ip_allowed(ip), ip
    for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"]:
        assert p.ip_allowed(ip), ip
    assert AddressPolicy(["127.0.0.1/32"]).ip_allowed("127.0.0.1")
    assert not AddressPolicy(["127.0.0.1/32"]).ip_allowed("127.0.0.2")
    with pytest.raises(UrlRejected) as e:
        p.check_url("file:///etc/passwd")
    assert e.value.status == "bad_scheme"
    with pytest.raises(UrlRejected) as e:
        p.check_url("http://[::1]:8080/x.jpg")
    assert e.value.status == "blocked_address"
    with pytest.raises(UrlRejected) as e:
        p.check_url("http://host:notaport/x.jpg")
    assert e.value.status == "bad_url"


def test_connect_time_peer_check(server, images) -> None:
    """The socket-level guard refuses a peer the policy forbids even without the pre-check
    (what a host re-resolving to a private address between check and connect would hit)."""
    import requests

    from pipeline.images.safety import BlockedPeer, GuardedAdapter

    url = server.add("/guard/a.jpg", static(images["jpg"]))
    with requests.Session() as s:
        s.mount("http://", GuardedAdapter(AddressPolicy()))
        with pytest.raises(BlockedPeer):
            s.get(url, timeout=2)
        s.mount("http://", GuardedAdapter(AddressPolicy(["127.0.0.0/8"])))
        assert s.get(url, timeout=2).content == images["jpg"]
    assert server.hits["/guard/a.jpg"] == 1


def test_retry_rules() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert is_transient("timeout", None) and is_transient("connection_error", None)
    assert is_transient("http_error", 429) and is_transient("http_error", 502)
    assert not is_transient("http_error", 403) and not is_transient("http_404", 404)
    assert not is_transient("truncated", 200)
