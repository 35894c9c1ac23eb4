"""Image URLs before fetching (issue 14): Amazon's full-size form and known placeholder URLs."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest

from pipeline.images import fetch_images
from pipeline.images.config import PLACEHOLDER_URLS
from pipeline.images.stage import JOURNAL_DIR
from pipeline.images.urls import full_size_url, placeholder_pattern
from pipeline.sample_images import render_item_image
from tests.image_server import ImageServer, local_config, make_work, static

FULL = "https://m.media-amazon.com/images/I/"
SQID_PLACEHOLDER = (
    "https://m.media-amazon.com/images/G/01/digital/video/web/"
    "Default_Background_Art_LTR._SX1080_FMjpg_.jpg"
)


@pytest.mark.parametrize(
    ("url", "full"),
    [
        (f"{FULL}71u3TX3+z2L._AC_SL1500_.jpg", f"{FULL}71u3TX3+z2L.jpg"),
        (f"{FULL}61bQjmU6DVL._AC_SY879_.jpg", f"{FULL}61bQjmU6DVL.jpg"),
        (f"{FULL}41hS3S2A8iL.__AC_SX300_SY300_QL70_FMwebp_.jpg", f"{FULL}41hS3S2A8iL.jpg"),
        (f"{FULL}51zOw0GMb3L._SX300_SY300_QL70_ML2_.jpg", f"{FULL}51zOw0GMb3L.jpg"),
        (f"{FULL}31Pn-Sk8ERL._SS40_.png", f"{FULL}31Pn-Sk8ERL.png"),
        (f"{FULL}41ZkWcN5MtL._SX38_SY50_CR,0,0,38,50_.jpg", f"{FULL}41ZkWcN5MtL.jpg"),
        (
            "https://images-na.ssl-images-amazon.com/images/I/81hVOPnmkBL._AC_SL1500_.jpg",
            f"{FULL}81hVOPnmkBL.jpg",
        ),
        (
            "https://images-na.ssl-images-amazon.com/images/I/51k%2BBYRnBOL._SX300_.jpg",
            f"{FULL}51k%2BBYRnBOL.jpg",
        ),
        ("http://ecx.images-amazon.com/images/I/41aX8VFbPtL._SY300_.jpg", f"{FULL}41aX8VFbPtL.jpg"),
        (
            "https://m.media-amazon.com/images/W/MEDIAX_792452-T2/images/I/71q8F7r0HXL._AC_SY879_.jpg",
            f"{FULL}71q8F7r0HXL.jpg",
        ),
        (
            "https://m.media-amazon.com/images/W/IMAGERENDERING_521856-T1/images/I/61vN8dFVYSL.jpg",
            f"{FULL}61vN8dFVYSL.jpg",
        ),
        (
            "https://m.media-amazon.com/images/W/WEBP_402378-T2/images/I/51Jq3TN+1RL._AC_UL320_.JPG",
            f"{FULL}51Jq3TN+1RL.JPG",
        ),
        (f"{FULL}71u3TX3+z2L.jpg", f"{FULL}71u3TX3+z2L.jpg"),  # already full size
    ],
)
def test_full_size_url(url: str, full: str) -> None:
    assert full_size_url(url) == full
    assert full_size_url(full) == full  # idempotent


@pytest.mark.parametrize(
    "url",
    [
        SQID_PLACEHOLDER,  # not a product image (/images/G/): left as it is
        "http://127.0.0.1:8000/images/I/71u3TX3+z2L._AC_SL1500_.jpg",  # not an Amazon host
        "https://example.com/images/I/71u3TX3+z2L._AC_SL1500_.jpg",
        "https://m.media-amazon.com:8443/images/I/71u3TX3+z2L._AC_SL1500_.jpg",  # a port
        "https://user@m.media-amazon.com/images/I/71u3TX3+z2L._AC_SL1500_.jpg",  # user info
        "https://m.media-amazon.com\\@127.0.0.1/images/I/71u3TX3+z2L._SX300_.jpg",
        "https://m.media-amazon.com/images/I/71u3TX3+z2L._AC_SL1500_.html",
        "https://m.media-amazon.com/images/I/sub/71u3TX3+z2L._AC_SL1500_.jpg",
        "ftp://m.media-amazon.com/images/I/71u3TX3+z2L._AC_SL1500_.jpg",
        "not a url",
    ],
)
def test_other_urls_are_left_alone(url: str) -> None:
    assert full_size_url(url) == url


def test_placeholder_patterns() -> None:
    placeholders = [
        SQID_PLACEHOLDER,
        "https://images-na.ssl-images-amazon.com/images/G/01/x-site/icons/no-img-sm._CB192198896_.gif",
        "https://images-na.ssl-images-amazon.com/images/G/02/x-site/icons/no-img-lg-uk.gif",
        "https://images-na.ssl-images-amazon.com/images/G/01/x-locale/detail/thumb-no-image._V47060337_.gif",
        "https://images-na.ssl-images-amazon.com/images/G/01/x-locale/common/transparent-pixel.gif",
    ]
    for u in placeholders:
        assert placeholder_pattern([u], PLACEHOLDER_URLS) is not None, u
    product = f"{FULL}71u3TX3+z2L._AC_SL1500_.jpg"
    assert placeholder_pattern([product, full_size_url(product)], PLACEHOLDER_URLS) is None
    assert placeholder_pattern([product], ("*/71u3TX3+z2L.*",)) == "*/71u3TX3+z2L.*"
    assert placeholder_pattern([product], ("*/71U3TX3+Z2L.*",)) is None  # case matters


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    s = ImageServer()
    yield s
    s.close()


def test_stage_refuses_placeholder_urls_unfetched(tmp_path, server) -> None:
    jpg = render_item_image("U1", "Speakers", "Speaker", size=(600, 400), fmt="jpg")[0]
    path = "/images/G/01/digital/video/web/Default_Background_Art_LTR._SX1080_FMjpg_.jpg"
    amazon = "https://images-na.ssl-images-amazon.com/images/I/71u3TX3+z2L._AC_SL1500_.jpg"
    urls = {
        "U1": server.add("/u/ok.jpg", static(jpg)),
        "U2": server.add(path, static(jpg)),
        "U3": server.base + path,  # a second item with the same placeholder
        # Matched in its fetched form (no request leaves this machine).
        "U4": amazon,
    }
    work = make_work(tmp_path, urls)
    cfg = local_config(placeholder_urls=(*PLACEHOLDER_URLS, f"{FULL}71u3TX3+z2L.jpg"))
    s = fetch_images(work, config=cfg)
    rows = {r["asin"]: r for r in pl.read_parquet(work / "images.parquet").to_dicts()}
    assert [rows[a]["status"] for a in sorted(rows)] == ["ok"] + ["placeholder_url"] * 3
    assert server.hits[path] == 0 and server.hits["/u/ok.jpg"] == 1
    assert s["failed"] == {"placeholder_url": 3} and s["ok"] == 1
    assert rows["U2"]["error"] == f"known placeholder URL ({PLACEHOLDER_URLS[0]})"
    # The item's URL is kept; the fetched (full-size) one is beside it.
    assert rows["U1"]["fetch_url"] == rows["U1"]["url"] == urls["U1"]
    assert rows["U4"]["url"] == amazon and rows["U4"]["fetch_url"] == f"{FULL}71u3TX3+z2L.jpg"
    # Both settings change results: rows made under others are redone.
    for changed in (local_config(amazon_full_size=False), local_config(placeholder_urls=())):
        assert changed.fingerprint() != local_config().fingerprint()


def test_journal_parts_from_before_fetch_url_still_read(tmp_path, server) -> None:
    jpg = render_item_image("V1", "Lamps", "Lamp", size=(400, 300), fmt="jpg")[0]
    work = make_work(tmp_path, {"V1": server.add("/v/a.jpg", static(jpg))})
    cfg = local_config()
    fetch_images(work, config=cfg)
    (part,) = (work / JOURNAL_DIR).glob("part-*.parquet")
    pl.read_parquet(part).drop("fetch_url").write_parquet(part)
    s = fetch_images(work, config=cfg)
    assert s["ok"] == 1 and s["this_run"]["attempted"] == 0
