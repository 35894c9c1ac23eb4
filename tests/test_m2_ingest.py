"""Amazon-M2 through ingest (``--format m2`` / auto-detection, ``--locale``): the staged
sessions go through reviews_finalize and the unchanged graph stage, checked against an
independent plain-Python computation over the CSV rows; the ordered sessions list; the
products file as metadata; refusals."""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from pipeline import workdir
from pipeline.errors import UserError
from pipeline.graph import GraphParams, build_graph
from pipeline.ingest import IngestParams, ingest
from pipeline.sources.stage import FetchParams, fetch_sources
from tests.test_m2 import BAD_TRAIN, make_sessions, numpy_list, write_csv

PRODUCTS_HEADER = [
    "id", "locale", "title", "price", "brand", "color", "size", "model", "material", "author",
    "desc",
]  # fmt: skip


def write_m2(tmp: Path, n: int = 700, seed: int = 3) -> tuple[Path, Path, Path]:
    """sessions_train.csv (with bad rows), sessions_test_task1.csv and products_train.csv."""
    rows = []
    for i, (items, loc) in enumerate(make_sessions(n, seed)):
        if i % 50 == 7 and i // 50 < len(BAD_TRAIN):
            rows.append(list(BAD_TRAIN[i // 50][:3]))
        rows.append([numpy_list(items[:-1]), items[-1], loc])
    train = tmp / "sessions_train.csv"
    write_csv(train, ["prev_items", "next_item", "locale"], rows, quote_all=False)
    test_rows = [[numpy_list(items), loc] for items, loc in make_sessions(80, seed + 1, False)]
    test = tmp / "sessions_test_task1.csv"
    write_csv(test, ["prev_items", "locale"], test_rows, quote_all=True)
    prods = []
    for loc in ("DE", "JP", "UK", "ES", "FR", "IT"):
        for i in range(45):
            prods.append([
                f"B{i:09d}", loc, f"{loc} product number {i}", f"{i}.99", f"brand{i % 4}",
                "red", "", "", "", "", f"A long enough description of {i} in {loc}",
            ])  # fmt: skip
    products = tmp / "products_train.csv"
    write_csv(products, PRODUCTS_HEADER, prods, quote_all=False)
    return train, test, products


def oracle(files: list[Path], locale: str, min_sessions: int, k: int):
    """Items (bare ids: one market) co-occurring in >= min_sessions distinct sessions,
    then the k-core, by plain Python over the CSV rows (csv module, no pipeline code)."""
    pairs: Counter = Counter()
    sessions = 0
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                field = row["prev_items"].strip()
                if row["locale"] != locale or not (field.startswith("[") and field.endswith("]")):
                    continue
                items = re.findall(r"'([^']*)'", field[1:-1])
                rest = re.sub(r"'[^']*'", "", field[1:-1])
                if not items or rest.strip() or any(not t.isalnum() for t in items):
                    continue
                if "next_item" in row:
                    if not row["next_item"].isalnum():
                        continue
                    items.append(row["next_item"])
                sessions += 1
                pairs.update(itertools.combinations(sorted(set(items)), 2))
    edges = {p: w for p, w in pairs.items() if w >= min_sessions}
    while True:  # peel nodes of degree < k until none is left
        deg: Counter = Counter()
        for a, b in edges:
            deg[a] += 1
            deg[b] += 1
        low = {v for v, d in deg.items() if d < k}
        if not low:
            return edges, sessions
        edges = {(a, b): w for (a, b), w in edges.items() if a not in low and b not in low}


def run_ingest(work: Path, reviews: list[Path], meta: list[Path], **kw) -> dict:
    fetch_sources(work, FetchParams(reviews=tuple(map(str, reviews)), meta=tuple(map(str, meta))))
    return ingest(work, IngestParams(**kw))


@pytest.mark.parametrize("fmt", ["auto", "m2"])
def test_session_graph_matches_plain_python(tmp_path, fmt):
    train, test, products = write_m2(tmp_path)
    work = tmp_path / "work"
    stats = run_ingest(work, [train, test], [products], format=fmt, locale=("UK",))
    build_graph(work, GraphParams(min_copurchase=3, k=3))

    want, n_sessions = oracle([train, test], "UK", 3, 3)
    assert len(want) > 20
    edges = pl.read_parquet(work / workdir.EDGES)
    assert {(a, b): w for a, b, w in edges.iter_rows()} == want

    # Rejects counted by reason; the other markets counted, not faults.
    by = stats["rejected_by_reason"]
    assert by["other_locale"] > 0 and by["bad_list"] >= 1 and by["empty_session"] == 1
    assert by["unknown_locale"] == 1
    assert stats["m2_locales"] == ["UK"]
    assert stats["m2_sessions"] == n_sessions

    # The ordered sessions, next item last (None for the test file).
    sessions = pl.read_parquet(work / workdir.SESSIONS)
    assert sessions.height == n_sessions
    assert set(sessions["locale"]) == {"UK"}
    first_test = sessions.filter(pl.col("session_id").str.starts_with("sessions_test_task1:"))
    assert first_test["next_item"].null_count() == first_test.height > 0
    with open(train, newline="") as fh:
        rows = list(csv.DictReader(fh))
    train_sessions = sessions.filter(pl.col("session_id").str.starts_with("sessions_train:"))
    sid, items, nxt = train_sessions.select("session_id", "items", "next_item").row(0)
    row = rows[int(sid.split(":")[1]) - 1]
    assert items == [t.strip("'") for t in row["prev_items"][1:-1].split()]
    assert nxt == row["next_item"]

    # products_train.csv as metadata: one market, bare ids, M2's own columns kept.
    items_df = pl.read_parquet(work / workdir.ITEMS)
    assert items_df.height == 45 and set(items_df["locale"]) == {"UK"}
    assert items_df.filter(pl.col("asin") == "B000000001")["brand"].to_list() == ["brand1"]
    assert stats["items_rejected_by_reason"] == {"other_locale": 45 * 5}


def test_all_markets_keys_by_locale(tmp_path):
    train, _, products = write_m2(tmp_path, n=200)
    work = tmp_path / "work"
    stats = run_ingest(work, [train], [products])
    assert len(stats["m2_locales"]) == 6
    asins = pl.read_parquet(work / workdir.REVIEWS)["asin"]
    assert asins.str.contains("^(DE|JP|UK|ES|FR|IT):").all()
    assert pl.read_parquet(work / workdir.ITEMS).height == 45 * 6


def test_refusals(tmp_path):
    train, _, products = write_m2(tmp_path, n=100)
    with pytest.raises(UserError, match="verified"):
        run_ingest(tmp_path / "w1", [train], [], verified_only=True)
    with pytest.raises(UserError, match="--reviews takes sessions"):
        run_ingest(tmp_path / "w2", [products], [])
    with pytest.raises(UserError, match="--meta takes products"):
        run_ingest(tmp_path / "w3", [train], [train])
    with pytest.raises(UserError, match="unknown Amazon-M2 locale"):
        run_ingest(tmp_path / "w4", [train], [], locale=("US",))
    other = tmp_path / "r.csv"
    other.write_text("item,user,rating,ts\nA,U,5,1\n")
    with pytest.raises(UserError, match="not an Amazon-M2 file"):
        run_ingest(tmp_path / "w5", [other], [], format="m2")


SQID_PLACEHOLDER = (
    "https://m.media-amazon.com/images/G/01/digital/video/web/"
    "Default_Background_Art_LTR._SX1080_FMjpg_.jpg"
)


def test_image_url_lists_fill_missing_images_and_refuse_placeholders(tmp_path):
    train, _, products = write_m2(tmp_path, n=150)
    urls = tmp_path / "product_image_urls.csv"
    rows = [[f"B{i:09d}", f"https://m.media-amazon.com/images/I/{i}xyz._AC_SY879_.jpg"]
            for i in range(0, 40)]  # fmt: skip
    rows[3][1] = SQID_PLACEHOLDER
    rows[4][1] = "ftp://example.com/a.jpg"
    rows[5][0] = ""
    write_csv(urls, ["product_id", "image_url"], rows, quote_all=False)
    supp = tmp_path / "supp_product_image_urls.csv"
    write_csv(
        supp,
        ["product_id", "image_url"],
        [["B000000000", "https://example.com/second.jpg"], ["B000000041", "https://x.org/41.jpg"]],
        quote_all=True,
    )
    work = tmp_path / "work"
    fetch_sources(
        work,
        FetchParams(
            reviews=(str(train),), meta=(str(products),), image_urls=(str(urls), str(supp))
        ),
    )
    stats = ingest(work, IngestParams(locale=("UK",)))
    assert stats["image_urls_read"] == 42
    assert stats["image_urls_rejected_by_reason"] == {
        "bad_url": 1,
        "duplicate_product": 1,
        "missing_product_id": 1,
        "placeholder_url": 1,
    }
    items = dict(pl.read_parquet(work / workdir.ITEMS).select("asin", "image_url").iter_rows())
    assert stats["image_urls_used"] == 38 == sum(v is not None for v in items.values())
    # The URL kept as given (the image stage fetches the full-size form, recording both).
    assert items["B000000001"] == "https://m.media-amazon.com/images/I/1xyz._AC_SY879_.jpg"
    assert items["B000000000"].endswith("/0xyz._AC_SY879_.jpg")  # the first list wins
    assert items["B000000003"] is None and items["B000000004"] is None
    assert items["B000000041"] == "https://x.org/41.jpg"
    rejects = (work / workdir.REJECTS).read_text()
    assert "placeholder_url" in rejects and "Default_Background_Art" in rejects


def test_image_urls_need_metadata_and_the_right_header(tmp_path):
    train, _, _ = write_m2(tmp_path, n=60)
    urls = tmp_path / "urls.csv"
    urls.write_text("product_id,image_url\nB000000001,https://x.org/1.jpg\n")
    work = tmp_path / "w"
    fetch_sources(work, FetchParams(reviews=(str(train),), image_urls=(str(urls),)))
    with pytest.raises(UserError, match="pass --meta"):
        ingest(work, IngestParams())
    _, _, products = write_m2(tmp_path, n=60)
    bad = tmp_path / "bad.csv"
    bad.write_text("asin,url\nB1,https://x.org/1.jpg\n")
    fetch_sources(
        work, FetchParams(reviews=(str(train),), meta=(str(products),), image_urls=(str(bad),))
    )
    with pytest.raises(UserError, match="not an image-URL list"):
        ingest(work, IngestParams())


def test_amazon_2023_metadata_gives_m2_items_images_and_a_taxonomy(tmp_path):
    import json as json_

    train, _, products = write_m2(tmp_path, n=120)
    meta = tmp_path / "meta_Things.jsonl"
    lines = []
    for i in range(0, 45, 2):  # every other item
        lines.append(json_.dumps({
            "parent_asin": f"B{i:09d}", "title": f"2023 title {i}", "description": [],
            "features": [], "categories": ["Things", f"Kind {i % 3}"], "main_category": "Things",
            "store": "s", "images": [{"large": f"https://m.media-amazon.com/images/I/{i}.jpg",
                                      "hi_res": None, "variant": "MAIN"}],
        }))  # fmt: skip
    lines.append(json_.dumps({"parent_asin": "B999999999", "title": "not in M2"}))
    meta.write_text("\n".join(lines) + "\n")
    for locale, key in ((("UK",), lambda i: f"B{i:09d}"), ((), lambda i: f"UK:B{i:09d}")):
        work = tmp_path / f"work{len(locale)}"
        run_ingest(work, [train], [products, meta], format="m2", locale=locale)
        items = pl.read_parquet(work / workdir.ITEMS)
        assert items.height == (45 if locale else 270)  # the M2 items, nothing more
        row = items.filter(pl.col("asin") == key(4)).row(0, named=True)
        assert row["title"] == "UK product number 4"  # M2's own text
        assert row["image_url"] == "https://m.media-amazon.com/images/I/4.jpg"
        assert row["categories"] == ["Things", "Kind 1"] and row["main_category"] == "Things"
        odd = items.filter(pl.col("asin") == key(5)).row(0, named=True)
        assert odd["image_url"] is None and odd["categories"] == []
