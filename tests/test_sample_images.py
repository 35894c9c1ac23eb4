"""The sample image renderer: deterministic, varied, and carrying class and title."""

from __future__ import annotations

import colorsys
import io
from collections import Counter

import numpy as np
from PIL import Image, ImageOps

from pipeline.images import ImageConfig, normalize_image
from pipeline.sample_images import (
    SHAPES,
    class_style,
    key_word,
    render_item_image,
    render_placeholder,
    render_scene,
)

CLASSES = ["Speakers", "Headphones", "Cables", "Chargers"]
TITLES = {
    "Speakers": "Portable Bluetooth Speaker with Deep Bass",
    "Headphones": "Wireless Over-Ear Headphones",
    "Cables": "Braided USB-C Charging Cable 6ft",
    "Chargers": "Fast Wall Charger 30W",
}


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return ImageOps.exif_transpose(im).convert("RGB")


def test_deterministic_bytes() -> None:
    for i in range(12):
        a = render_item_image(f"B{i:09d}", "Speakers", TITLES["Speakers"], seed=3)
        b = render_item_image(f"B{i:09d}", "Speakers", TITLES["Speakers"], seed=3)
        assert a == b
    assert render_placeholder() == render_placeholder()
    # Seed and asin change the picture.
    assert render_item_image("B1", "Speakers", "x", seed=0) != render_item_image(
        "B1", "Speakers", "x", seed=1
    )


def test_formats_sizes_and_decodability() -> None:
    exts: Counter[str] = Counter()
    sizes = set()
    modes = set()
    cfg = ImageConfig()
    for i in range(120):
        cls = CLASSES[i % 4]
        data, ext = render_item_image(f"A{i:05d}", cls, TITLES[cls])
        exts[ext] += 1
        im = Image.open(io.BytesIO(data))
        assert im.format == {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[ext]
        modes.add(im.mode)
        sizes.add(im.size)
        # Every sample image passes the image stage's checks.
        n = normalize_image(data, cfg)
        assert max(n.width, n.height) <= cfg.max_side
    assert set(exts) == {"jpg", "png", "webp"}
    assert exts["jpg"] > exts["png"] and exts["jpg"] > exts["webp"]
    assert len(sizes) > 100  # varied sizes and aspect ratios
    assert {"RGB", "RGBA", "P"} <= modes  # plain, cut-out and palette PNGs


def test_exif_rotated_variant_displays_upright() -> None:
    im = render_scene("B1", "Speakers", "Speaker", size=(400, 300))
    data, ext = render_item_image(
        "B1", "Speakers", "Speaker", size=(400, 300), fmt="jpg-exif-rotated", quality=95
    )
    raw = Image.open(io.BytesIO(data))
    assert raw.size == (300, 400) and raw.getexif()[0x0112] == 6
    upright = _open(data)
    assert upright.size == (400, 300)
    diff = np.abs(np.asarray(upright, float) - np.asarray(im, float)).mean()
    assert diff < 4  # only JPEG loss


def test_key_word() -> None:
    assert key_word("Portable Bluetooth Speaker with Deep Bass") == "Speaker"
    assert key_word("Braided USB-C Charging Cable 6ft") == "Cable"
    assert key_word("Acme Noise Cancelling Headphones Q123") == "Headphones"
    assert key_word("Phone Case, Slim Fit for iPhone") == "Case"
    assert key_word("with 3 pack") == "Item"
    assert key_word("the and of") == "Item"
    assert key_word("") == "Item"


def test_title_word_is_drawn() -> None:
    # Same item and class, different title: only the text region differs.
    a = np.asarray(render_scene("B7", "Cables", "Sturdy Cable", size=(600, 600)), float)
    b = np.asarray(render_scene("B7", "Cables", "Cable Reel", size=(600, 600)), float)
    diff = np.abs(a - b).sum(axis=2)
    rows = np.nonzero(diff.sum(axis=1))[0]
    assert rows.size > 0
    assert rows.min() > 600 * 0.55  # the key word sits in the lower part


def _hue_of_dominant_colour(im: Image.Image) -> float:
    """Mean hue of the saturated pixels (the class shapes)."""
    small = np.asarray(im.convert("RGB").resize((64, 64)), float) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in small.reshape(-1, 3)])
    sat = hsv[hsv[:, 1] > 0.45]
    ang = sat[:, 0] * 2 * np.pi
    return float(np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) / (2 * np.pi) % 1.0)


def test_class_is_learnable_from_pixels() -> None:
    """A nearest-centroid classifier on tiny colour thumbnails separates the classes."""
    feats, labels = [], []
    for c, cls in enumerate(CLASSES):
        for i in range(15):
            data, _ = render_item_image(f"{cls[:2]}{i:04d}", cls, TITLES[cls], seed=0)
            im = _open(data).resize((8, 8), Image.Resampling.BOX)
            feats.append(np.asarray(im, float).ravel() / 255)
            labels.append(c)
    x, y = np.array(feats), np.array(labels)
    correct = 0
    for i in range(len(y)):  # leave-one-out
        mask = np.arange(len(y)) != i
        cents = np.array([x[mask & (y == c)].mean(axis=0) for c in range(len(CLASSES))])
        correct += int(np.argmin(((cents - x[i]) ** 2).sum(axis=1)) == y[i])
    assert correct / len(y) >= 0.9


def test_class_style_is_stable_and_hue_shows() -> None:
    shape, hue = class_style("Speakers")
    assert shape in SHAPES and 0 <= hue < 1
    assert class_style("Speakers") == (shape, hue)
    im = render_scene("B3", "Speakers", "Speaker", size=(300, 300))
    got = _hue_of_dominant_colour(im)
    assert min(abs(got - hue), 1 - abs(got - hue)) < 0.06


def test_placeholder_is_a_jpeg() -> None:
    data = render_placeholder()
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.size == (500, 500)


def test_sample_category_through_the_image_stage(tmp_path) -> None:
    """The demo generator's images, served over HTTP, pass the image stage; the planted
    placeholders and broken URLs are the ones it finds."""
    import functools
    import gzip
    import http.server
    import json
    import threading

    import polars as pl

    from pipeline.images import fetch_images
    from pipeline.sample import SampleSpec, generate_sample

    out = tmp_path / "sample"
    out.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(out))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        spec = SampleSpec(n_items=120, n_users=400, placeholder_rate=0.05)
        info = generate_sample(out, base, seed=5, spec=spec)
        with gzip.open(info["meta"], "rt") as f:
            asins = sorted({json.loads(line)["parent_asin"] for line in f})
        work = tmp_path / "work"
        work.mkdir()
        pl.DataFrame({"asin": asins}).write_parquet(work / "nodes.parquet")
        # No items table yet: the stage ingests the metadata itself.
        s = fetch_images(
            work,
            config=ImageConfig(allow_private=("127.0.0.1/32",), threads=8),
            meta=[info["meta"]],
            progress=True,
        )
        items = pl.read_parquet(work / "items.parquet")
        assert sorted(items["asin"]) == asins
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert s["placeholder"] == info["items_placeholder"] > 3
    assert s["failed"].get("http_404", 0) == info["items_broken_image"]
    assert s["failed"].get("no_url", 0) == info["items_no_image"]
    n_bad = info["items_placeholder"] + info["items_broken_image"] + info["items_no_image"]
    assert s["ok"] == items.height - n_bad
