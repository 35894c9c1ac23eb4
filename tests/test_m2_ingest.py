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
