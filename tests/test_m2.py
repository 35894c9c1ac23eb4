"""Amazon-M2 staging (pipeline/sources/m2.py): files written here in the distributed layout
(numpy-printed prev_items, wrapped over lines, quoted or not, six locales, bad rows), staged
rows checked against the sessions the generator wrote, and the co-occurrence graph of the
staged sessions, built by the real graph stage, against networkx."""

from __future__ import annotations

import csv
import gzip
import itertools
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

from pipeline import workdir
from pipeline.db import connect
from pipeline.errors import UserError
from pipeline.graph import GraphParams, build_graph
from pipeline.ingest import _staged_view
from pipeline.sources import m2
from pipeline.sql import execute_script

LOCALES = ["DE", "JP", "UK", "ES", "FR", "IT"]


def numpy_list(items: list[str]) -> str:
    """prev_items exactly as the M2 files print them: str() of a numpy array of str, which
    separates with spaces and wraps at 75 characters."""
    return str(np.array(items))


def item_id(i: int) -> str:
    return f"B{i:09d}"


def make_sessions(n: int, seed: int, with_next: bool = True) -> list[tuple[list[str], str]]:
    """(items in order, locale) per session; items drawn from clusters of 10 ids per locale,
    so the co-occurrence graph has a dense core. Ids repeat across locales (one listing per
    market) and sometimes within a session."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        loc = (
            LOCALES[int(rng.integers(0, 3))]
            if rng.random() < 0.9
            else LOCALES[3 + int(rng.integers(0, 3))]
        )
        cluster = int(rng.integers(0, 4))
        size = int(rng.integers(2 if with_next else 1, 9))
        items = [item_id(cluster * 10 + int(rng.integers(0, 10))) for _ in range(size)]
        if rng.random() < 0.05:
            items = items + [f"{int(rng.integers(10**9, 10**10))}"]  # an ISBN-like id
        out.append((items, loc))
    return out


def write_csv(path: Path, header: list[str], rows: list[list[str]], quote_all: bool) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)


# Bad sessions: (prev_items field, next_item, locale) -> reason.
BAD_TRAIN = [
    ("['B000000001' 'B000000002", "B000000003", "UK", "bad_list"),
    ("B000000001 B000000002", "B000000003", "UK", "bad_list"),
    ("['B00000 0001']", "B000000003", "UK", "bad_list"),
    ("[]", "B000000003", "DE", "empty_session"),
    ("", "B000000003", "DE", "missing_prev_items"),
    ("['B000000001' 'B000000002' ... 'B000000009']", "B000000003", "JP", "truncated_list"),
    ("['B000000001' 'B000000002']", "B000000003", "US", "unknown_locale"),
    ("['B000000001' 'B000000002']", "B000000003", "", "missing_locale"),
    ("['B000000001' 'B000000002']", "", "UK", "missing_next_item"),
    ("['B000000001' 'B000000002']", "B00-bad", "UK", "bad_next_item"),
]


def train_file(tmp: Path, n: int = 400, seed: int = 0, quote_all: bool = True):
    """sessions_train.csv with good sessions and BAD_TRAIN rows interleaved; returns the
    path and, per data row (1-based), the expected (items, locale) or reject reason."""
    sessions = make_sessions(n, seed)
    rows, expected = [], {}
    bad = iter(BAD_TRAIN)
    for i, (items, loc) in enumerate(sessions):
        if i % 37 == 5 and (b := next(bad, None)) is not None:
            rows.append(list(b[:3]))
            expected[len(rows)] = b[3]
        rows.append([numpy_list(items[:-1]), items[-1], loc])
        expected[len(rows)] = (items, loc)
    path = tmp / "sessions_train.csv"
    write_csv(path, list(m2.SESSION_COLUMNS), rows, quote_all)
    return path, expected


def staged_rows(path: Path, **kw) -> tuple[pl.DataFrame, dict]:
    out = path.with_suffix(".staged.parquet")
    stats = m2.stage_file(path, out, **kw)
    return pl.read_parquet(out), stats


def sessions_of(df: pl.DataFrame) -> dict[int, tuple[list[str], str]]:
    good = df.filter(pl.col("reject_reason").is_null()).sort("row_no", "position")
    return {
        r: (g["asin"].to_list(), g["locale"][0])
        for (r,), g in good.group_by("row_no", maintain_order=True)
    }


def test_numpy_lists_wrap_over_lines():
    # The fixture must exercise the wrapped form: a long session spans lines.
    text = numpy_list([item_id(i) for i in range(12)])
    assert "\n" in text and text.startswith("['B000000000' 'B000000001'")


@pytest.mark.parametrize("quote_all", [True, False])
def test_sessions_train_rows_match_the_generated_sessions(tmp_path, quote_all):
    path, expected = train_file(tmp_path, quote_all=quote_all)
    df, stats = staged_rows(path)
    assert stats["format"] == "m2_sessions"
    assert stats["records"] == len(expected)
    want_bad = Counter(v for v in expected.values() if isinstance(v, str))
    assert stats["rejected_by_reason"] == dict(want_bad)
    assert sum(want_bad.values()) == len(BAD_TRAIN)  # every bad row was written

    got = sessions_of(df)
    want = {r: v for r, v in expected.items() if not isinstance(v, str)}
    assert set(got) == set(want)
    for r, (items, loc) in want.items():
        assert got[r] == ([f"{loc}:{i}" for i in items], loc), r
    # The session is the user; the next item comes last and is flagged.
    good = df.filter(pl.col("reject_reason").is_null())
    assert (good["user_id"] == "sessions_train:" + good["row_no"].cast(pl.String)).all()
    last = good.group_by("row_no").agg(pl.col("position").max().alias("p"))
    flagged = good.filter("is_next").select("row_no", pl.col("position").alias("p"))
    assert flagged.sort("row_no").equals(last.sort("row_no"))
    # The review columns of ingest's staged rows are there (empty).
    assert {"rating", "ts", "verified", "helpful_votes", "title", "text"} <= set(df.columns)
    bad = df.filter(pl.col("reject_reason").is_not_null())
    assert bad["raw"].null_count() == 0 and bad["asin"].null_count() == bad.height


def test_locale_selection_keeps_bare_ids_and_counts_the_rest(tmp_path):
    path, expected = train_file(tmp_path, n=200, seed=3)
    df, stats = staged_rows(path, locales="uk")
    want = {r: v for r, v in expected.items() if not isinstance(v, str) and v[1] == "UK"}
    assert sessions_of(df) == {r: (items, "UK") for r, (items, _) in want.items()}
    other = sum(1 for v in expected.values() if not isinstance(v, str) and v[1] != "UK")
    # Bad rows are judged before the market: they keep their own reason.
    assert stats["rejected_by_reason"]["other_locale"] == other
    assert df.filter(pl.col("reject_reason") == "other_locale")["raw"].null_count() == other
    # Two markets: back to '<LOCALE>:<id>'.
    df2, _ = staged_rows(path, locales=["UK", "de"])
    assert set(df2.filter(pl.col("reject_reason").is_null())["locale"]) <= {"UK", "DE"}
    assert df2.filter(pl.col("reject_reason").is_null())["asin"].str.contains(":").all()


def test_test_files_have_no_next_item_and_gzip_works(tmp_path):
    sessions = make_sessions(60, seed=5, with_next=False)
    path = tmp_path / "sessions_test_task1.csv.gz"
    write_csv(
        path, list(m2.TEST_SESSION_COLUMNS), [[numpy_list(s), loc] for s, loc in sessions], False
    )
    assert m2.detect_m2(path) == "m2_sessions"
    df, stats = staged_rows(path, locales=["DE", "JP", "UK"])
    assert not df["is_next"].drop_nulls().any()
    want = {i + 1: (s, loc) for i, (s, loc) in enumerate(sessions) if loc in ("DE", "JP", "UK")}
    assert sessions_of(df) == {r: ([f"{loc}:{x}" for x in s], loc) for r, (s, loc) in want.items()}
    assert df["user_id"][0].startswith("sessions_test_task1:")


def test_session_list_keeps_the_order_and_the_next_item(tmp_path):
    path, expected = train_file(tmp_path, n=80, seed=9)
    out = path.with_suffix(".staged.parquet")
    m2.stage_file(path, out)
    n = m2.write_session_list(connect(), [out], tmp_path / "sessions.parquet")
    lst = pl.read_parquet(tmp_path / "sessions.parquet")
    want = {r: v for r, v in expected.items() if not isinstance(v, str)}
    assert n == lst.height == len(want)
    assert lst["row_no"].to_list() == sorted(want)
    for row in lst.iter_rows(named=True):
        items, loc = want[row["row_no"]]
        keys = [f"{loc}:{i}" for i in items]
        assert (row["items"], row["next_item"], row["locale"]) == (keys[:-1], keys[-1], loc)
        assert row["session_id"] == f"sessions_train:{row['row_no']}"


def test_a_record_the_csv_reader_cannot_split_is_counted(tmp_path):
    path = tmp_path / "sessions_train.csv"
    path.write_text(
        "prev_items,next_item,locale\n"
        "\"['B000000001' 'B000000002']\",B000000003,UK\n"
        "\"['B000000001']\",B000000003,UK,surplus\n"
        "\"['B000000004'\n 'B000000005']\",B000000006,DE\n"
    )
    df, stats = staged_rows(path)
    assert stats["records"] == 3
    assert sum(v for k, v in stats["rejected_by_reason"].items() if k.startswith("csv:")) == 1
    assert sessions_of(df)[2] == (["DE:B000000004", "DE:B000000005", "DE:B000000006"], "DE")


def test_detect_and_refuse(tmp_path):
    prod = tmp_path / "products_train.csv"
    write_csv(prod, list(m2.PRODUCT_COLUMNS), [], False)
    assert m2.detect_m2(prod) == "m2_products"
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("B000000001,U1,5.0,1500000000\n")
    assert m2.detect_m2(ratings) is None
    with pytest.raises(UserError, match="not an Amazon-M2 file"):
        m2.stage_file(ratings, tmp_path / "x.parquet")
    with pytest.raises(UserError, match="not an Amazon-M2 sessions file"):
        m2.stage_file(prod, tmp_path / "x.parquet", fmt="m2_sessions")
    with pytest.raises(UserError, match="unknown Amazon-M2 locale"):
        m2.select_locales("US")


def test_keys_and_prefixes():
    assert m2.select_locales(None) == tuple(sorted(LOCALES))
    assert m2.select_locales("uk, de") == ("DE", "UK")
    assert m2.item_key("B09W9FND7K", "uk", ("UK",)) == "B09W9FND7K"
    assert m2.item_key("B09W9FND7K", "uk", ("DE", "UK")) == "UK:B09W9FND7K"
    assert m2.split_key("UK:B09W9FND7K") == ("UK", "B09W9FND7K")
    assert m2.split_key("B09W9FND7K") == (None, "B09W9FND7K")
    assert (
        m2.session_prefix("https://h/x/sessions_test_task2.csv.gz?sig=1") == "sessions_test_task2"
    )


# ----------------------------------------------------------------------------- products

PRODUCTS = [
    ["B005ZSSN10", "DE", "RED DRAGON Amberjack 3 - Steel Tip 22 Gramm Wolfram Profi Dartpfeile",
     "30.95", "RED DRAGON", "", "", "RDD0089", "", "",
     "Amberjacks Steel Dartpfeile sind verfügbar in 21g, 22g, 24g und 26g.\nZweite \"Zeile\""],
    ["B005ZSSN10", "UK", "Red Dragon Amberjack 3, 22 gram", "25.0", "RED DRAGON", "Black",
     "22g", "", "Tungsten", "", ""],
    ["B08GYKNCCP", "JP", "Amazon Basics 電池 単3形 アルカリ 20個セット", "1390.0", "Amazon Basics",
     "", "20個", "", "", "", "長持ち、液漏れ防止"],
    ["4798161500", "JP", "独習C# 第5版", "3278.0", "", "", "", "", "", "山田 祥寛", ""],
    ["B0BB6P8QXK", "FR", "Lot de 2 coques", "", "", "Transparent", "", "", "", "", "Étui"],
    ["B000000001", "US", "x", "1", "", "", "", "", "", "", ""],  # unknown_locale
    ["", "UK", "no id", "1", "", "", "", "", "", "", ""],  # missing_item
    ["B000 00002", "UK", "bad id", "1", "", "", "", "", "", "", ""],  # bad_item_id
    ["B000000003", "IT", "bad price", "circa 10", "", "", "", "", "", "", ""],  # wrong_type:price
]  # fmt: skip
PRODUCT_REJECTS = {5: "unknown_locale", 6: "missing_item", 7: "bad_item_id", 8: "wrong_type:price"}


def test_products_match_the_csv_module(tmp_path):
    path = tmp_path / "products_train.csv"
    write_csv(path, list(m2.PRODUCT_COLUMNS), PRODUCTS, False)
    df, stats = staged_rows(path)
    assert stats["format"] == "m2_products" and stats["records"] == len(PRODUCTS)
    assert stats["rejected_by_reason"] == dict(Counter(PRODUCT_REJECTS.values()))
    with open(path, newline="", encoding="utf-8") as f:
        parsed = list(csv.DictReader(f))
    df = df.sort("row_no")
    for i, (want, got) in enumerate(zip(parsed, df.iter_rows(named=True), strict=True)):
        assert got["reject_reason"] == PRODUCT_REJECTS.get(i), i
        if i in PRODUCT_REJECTS:
            assert got["asin"] is None and got["raw"].startswith(want["id"])
            continue
        assert got["asin"] == f"{want['locale']}:{want['id']}"
        assert got["title"] == want["title"]
        assert got["description"] == ([want["desc"]] if want["desc"] else [])
        assert got["price"] == (float(want["price"]) if want["price"] else None)
        for col in ("brand", "color", "size", "model", "material", "author"):
            assert got[col] == (want[col] or None), col
        assert got["store"] == (want["brand"] or None)
        assert got["categories"] == [] and got["image_url"] is None


def test_products_of_one_market_have_bare_ids(tmp_path):
    path = tmp_path / "products_train.csv"
    write_csv(path, list(m2.PRODUCT_COLUMNS), PRODUCTS, True)
    df, stats = staged_rows(path, locales="JP")
    good = df.filter(pl.col("reject_reason").is_null())
    assert sorted(good["asin"]) == ["4798161500", "B08GYKNCCP"]
    assert stats["rejected_by_reason"]["other_locale"] == 3


# ----------------------------------------------------------------------------- graph


def oracle_graph(sessions: list[tuple[list[str], str]], min_sessions: int, k: int) -> nx.Graph:
    """Items co-occurring in >= min_sessions distinct sessions, then the k-core."""
    pairs: Counter = Counter()
    for items, loc in sessions:
        keys = sorted({f"{loc}:{i}" for i in items})
        pairs.update(itertools.combinations(keys, 2))
    g = nx.Graph()
    g.add_weighted_edges_from((a, b, w) for (a, b), w in pairs.items() if w >= min_sessions)
    return nx.k_core(g, k)


def test_session_graph_matches_networkx(tmp_path):
    path, expected = train_file(tmp_path, n=900, seed=11)
    out = path.with_suffix(".staged.parquet")
    m2.stage_file(path, out)
    # The integration path: staged rows -> ingest's staged view -> reviews_finalize ->
    # reviews.parquet -> the graph stage, exactly as for review dumps.
    work = tmp_path / "work"
    work.mkdir()
    con = connect()
    _staged_view(con, [out])
    execute_script(con, "reviews_finalize", {"verified_only": False})
    con.execute(
        f"COPY (SELECT * FROM reviews ORDER BY asin, user_id) TO '{work / workdir.REVIEWS}'"
    )
    stats = build_graph(work, GraphParams(min_copurchase=3, k=5))

    good = [v for v in expected.values() if not isinstance(v, str)]
    oracle = oracle_graph(good, 3, 5)
    assert oracle.number_of_edges() > 50  # a real core, not an empty comparison
    edges = pl.read_parquet(work / workdir.EDGES)
    got = {(a, b): w for a, b, w in edges.iter_rows()}
    want = {tuple(sorted((a, b))): d["weight"] for a, b, d in oracle.edges(data=True)}
    assert got == want
    assert stats["users"] == len({f"sessions_train:{r}" for r, v in expected.items()
                                  if not isinstance(v, str)})  # fmt: skip
    nodes = pl.read_parquet(work / workdir.NODES)
    assert sorted(nodes["asin"]) == sorted(oracle.nodes)
    # The same id in two markets is two nodes.
    assert len({m2.split_key(a)[1] for a in oracle.nodes}) < oracle.number_of_nodes()
