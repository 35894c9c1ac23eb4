"""explorer.html on an assembled category folder: its data files checked against the
published files, and the page itself in a real headless Chromium (tests/browser.py)."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.classes import ClassesParams
from pipeline.errors import UserError
from pipeline.publish.assemble import AssembleParams, assemble_category
from pipeline.publish.explorer import (
    DATA_DIR,
    PAGE,
    SCREEN_SIZE,
    ExplorerParams,
    _read_js_value,
    bytes_bound,
    read_clip_t,
    take_screenshot,
    write_explorer,
)
from pipeline.runner import run_stage
from pipeline.stages import CLASSES
from tests.assemble_fixtures import make_work
from tests.browser import chromium, file_url, open_page  # noqa: F401  (chromium: a fixture)

N = 60
PARAMS = ExplorerParams(neighbours=4, shard_nodes=16, sample_nodes=12)


def _data(folder: Path, name: str) -> dict:
    call = {"meta.js": "meta", "index.js": "index"}.get(name, "shard")
    return _read_js_value(folder / DATA_DIR / name, f"ACMMG_EXPLORER.{call}")


def _files(folder: Path) -> dict[str, bytes]:
    paths = [folder / PAGE, *sorted((folder / DATA_DIR).rglob("*"))]
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths if p.is_file()}


def _extract_images(folder: Path) -> None:
    with tarfile.open(folder / "images.tar") as tar:
        tar.extractall(folder, filter="data")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An assembled folder (3 node_attributes shards) with explorer files and images/
    extracted, as ``acmmg download`` leaves it."""
    root = tmp_path_factory.mktemp("explorer")
    work = root / "work"
    make_work(work, n=N)
    run_stage(CLASSES, work, ClassesParams(min_classes=2, min_items_per_class=5))
    out = assemble_category(
        work, root / "pub" / "demo", AssembleParams(category="demo", shard_rows=25)
    )
    clip_t = read_clip_t(work)
    info = write_explorer(out, "demo", clip_t=clip_t, p=PARAMS)
    _extract_images(out)
    nodes = pl.concat(
        [pl.read_parquet(p) for p in sorted((out / "node_attributes").glob("*.parquet"))]
    ).sort("node_id")
    return {
        "root": root,
        "work": work,
        "out": out,
        "info": info,
        "clip_t": clip_t,
        "nodes": nodes,
        "edges": pl.read_parquet(out / "edges.parquet"),
    }


# ----------------------------------------------------------------------------- data files


def test_files_and_determinism(built: dict, tmp_path: Path) -> None:
    out, info = built["out"], built["info"]
    shards = [f"{DATA_DIR}/nodes_{k:04d}.js" for k in range(4)]  # 60 nodes, 16 per shard
    assert set(info.files) == {
        PAGE,
        *shards,
        f"{DATA_DIR}/index.js",
        f"{DATA_DIR}/meta.js",
        f"{DATA_DIR}/explorer.js",
        f"{DATA_DIR}/explorer.css",
    }
    assert info.bytes == sum((out / f).stat().st_size for f in info.files)
    # A second folder with the same files gives the same bytes; a rerun with other settings
    # into the same folder leaves no stale shard behind.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns(DATA_DIR, PAGE, "images"))
    write_explorer(copy, "demo", clip_t=built["clip_t"], p=PARAMS)
    assert _files(copy) == _files(out)
    write_explorer(copy, "demo", p=ExplorerParams(shard_nodes=100))
    assert sorted(p.name for p in (copy / DATA_DIR).glob("nodes_*.js")) == ["nodes_0000.js"]


def test_index_matches_node_attributes(built: dict) -> None:
    index, nodes = _data(built["out"], "index.js"), built["nodes"]
    assert index["asin"] == nodes["asin"].to_list()
    assert index["title"] == nodes["title"].to_list()  # short titles: kept whole
    assert index["class"] == nodes["class"].to_list()
    e = built["edges"]
    degree = np.bincount(np.concatenate([e["src"].to_numpy(), e["dst"].to_numpy()]), minlength=N)
    assert index["degree"] == degree.tolist()
    meta = _data(built["out"], "meta.js")
    names = json.loads((built["out"] / "node_categories.json").read_text())
    assert meta["classes"] == [names[str(i)] for i in range(len(names))]
    assert meta["nodes"] == N and meta["edges"] == e.height and meta["shards"] == 4
    assert meta["relations"] == {str(i): f"relation {i}" for i in range(3)}


def test_neighbours_are_the_heaviest_edges(built: dict) -> None:
    e = built["edges"]
    both = pl.concat(
        [
            e.select(pl.col("src").alias("u"), pl.col("dst").alias("v"), "weight", "relation_id"),
            e.select(pl.col("dst").alias("u"), pl.col("src").alias("v"), "weight", "relation_id"),
        ]
    )
    for k in range(4):
        shard = _data(built["out"], f"nodes_{k:04d}.js")
        assert shard["start"] == 16 * k
        for i, flat in enumerate(shard["nbr"]):
            u = shard["start"] + i
            want = (
                both.filter(pl.col("u") == u)
                .sort(["weight", "v"], descending=[True, False])
                .head(PARAMS.neighbours)
            )
            got = [tuple(flat[j : j + 3]) for j in range(0, len(flat), 3)]
            assert got == list(want.select("v", "weight", "relation_id").iter_rows()), u


def test_reviews_and_clip_t(built: dict) -> None:
    nodes, clip_t = built["nodes"], built["clip_t"]
    for k in range(4):
        shard = _data(built["out"], f"nodes_{k:04d}.js")
        for i, (revs, count, scores) in enumerate(
            zip(shard["reviews"], shard["n_reviews"], shard["clip_t"], strict=True)
        ):
            row = nodes.row(shard["start"] + i, named=True)
            assert count == len(row["reviews"])
            full = row["reviews"][: PARAMS.reviews]
            assert len(revs) == len(full)
            for cut, whole in zip(revs, full, strict=True):
                assert len(cut) <= PARAMS.review_chars
                assert cut == whole or (cut.endswith("…") and whole.startswith(cut[:-1]))
            t, d = clip_t[row["asin"]]
            assert scores == [round(t, 4), round(d, 4)]
    # Node 0 of the fixture has 40 reviews, the folder keeps 25, the page 2 of them.
    assert max(_data(built["out"], "nodes_0000.js")["n_reviews"] + [0]) >= 1


def test_sample_subgraph_spans_classes_and_is_connected(built: dict) -> None:
    meta = _data(built["out"], "meta.js")
    s = meta["sample"]
    nodes = s["nodes"]
    assert len(nodes) == PARAMS.sample_nodes == len(set(nodes))
    assert built["info"].sample_classes == len({built["nodes"]["class"][u] for u in nodes}) >= 2
    assert all(40 <= x <= 960 for x in s["x"]) and all(40 <= y <= 660 for y in s["y"])
    edges = {(u, v): (w, r) for u, v, w, r in s["edges"]}
    real = {
        (u, v): (w, r)
        for u, v, w, r in built["edges"].select("src", "dst", "weight", "relation_id").iter_rows()
    }
    assert all(real[key] == value for key, value in edges.items())  # only real edges, u < v
    # Connected: a walk over the drawn edges reaches every node.
    reach, todo = {nodes[0]}, [nodes[0]]
    while todo:
        u = todo.pop()
        for a, b in edges:
            for x, y in ((a, b), (b, a)):
                if x == u and y not in reach:
                    reach.add(y)
                    todo.append(y)
    assert reach == set(nodes)
    assert (
        meta["focus"] in nodes and built["info"].focus_asin == built["nodes"]["asin"][meta["focus"]]
    )


def _worst_case_folder(folder: Path, n: int, p: ExplorerParams) -> None:
    """Every text longer than the page keeps, 25 reviews, every node with many neighbours."""
    (folder / "node_attributes").mkdir(parents=True)
    table = pa.table(
        {
            "asin": [f"X{i:011d}" for i in range(n)],
            "title": ["T" * (3 * p.title_chars)] * n,
            "desc": [["d"]] * n,
            "class": [i % 3 for i in range(n)],
            "reviews": [["R" * (3 * p.review_chars)] * 25] * n,
            "node_id": list(range(n)),
        }
    )
    pq.write_table(table, folder / "node_attributes" / "node_attributes_0.parquet")
    rng = np.random.default_rng(0)
    pairs = {(min(a, b), max(a, b)) for a, b in rng.integers(0, n, (n * 20, 2)) if a != b}
    src, dst = np.array(sorted(pairs)).T
    pq.write_table(
        pa.table(
            {
                "src": src,
                "dst": dst,
                "weight": rng.integers(10_000, 99_999, src.size),
                "relation_id": rng.integers(10_000, 99_999, src.size),
            }
        ),
        folder / "edges.parquet",
    )
    (folder / "node_categories.json").write_text(json.dumps({"0": "a", "1": "b", "2": "c"}))


def test_bytes_stay_under_the_bound(tmp_path: Path) -> None:
    p = ExplorerParams(shard_nodes=500)
    n = 2000
    _worst_case_folder(tmp_path, n, p)
    clip = {f"X{i:011d}": (-123.456789, 123.456789) for i in range(n)}
    write_explorer(tmp_path, "worst", clip_t=clip, p=p)
    data = [tmp_path / DATA_DIR / "index.js", *(tmp_path / DATA_DIR).glob("nodes_*.js")]
    total = sum(f.stat().st_size for f in data)
    bound = bytes_bound(n, p, id_digits=4)
    assert 0.8 * bound < total <= bound
    # Electronics: 98 k nodes (ids of 5 digits) stay under 50 MB in the worst case.
    assert bytes_bound(98_000, ExplorerParams(), id_digits=5) < 50e6


def test_folder_without_edges(tmp_path: Path) -> None:
    (tmp_path / "node_attributes").mkdir()
    pq.write_table(
        pa.table(
            {
                "asin": ["A1", "A2"],
                "title": ["one", None],
                "desc": [[], []],
                "class": [0, 1],
                "reviews": [None, ["ok"]],
                "node_id": [0, 1],
            }
        ),
        tmp_path / "node_attributes" / "node_attributes_0.parquet",
    )
    empty = pa.array([], pa.int64())
    pq.write_table(
        pa.table({"src": empty, "dst": empty, "weight": empty}), tmp_path / "edges.parquet"
    )
    (tmp_path / "node_categories.json").write_text(json.dumps({"0": "a", "1": "b"}))
    info = write_explorer(tmp_path, "tiny")
    meta, index = _data(tmp_path, "meta.js"), _data(tmp_path, "index.js")
    assert index == {"asin": ["A1", "A2"], "class": [0, 1], "degree": [0, 0], "title": ["one", ""]}
    assert (
        meta["sample"]["nodes"] == [0] and meta["sample"]["edges"] == [] and meta["relations"] == {}
    )
    shard = _data(tmp_path, "nodes_0000.js")
    assert (
        shard["nbr"] == [[], []]
        and shard["reviews"] == [[], ["ok"]]
        and shard["n_reviews"] == [0, 1]
    )
    assert info.sample_classes == 1


def test_bad_folders_are_refused(
    built: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(built["out"], folder, ignore=shutil.ignore_patterns("images", "embeddings"))
    monkeypatch.setenv("ACMMG_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(UserError, match="no Chromium for the explorer screenshot"):
        write_explorer(folder, "demo", p=ExplorerParams(screenshot=True))
    shard = folder / "node_attributes" / "node_attributes_1.parquet"
    t = pq.read_table(shard)
    pq.write_table(t.set_column(0, "asin", pa.array(["../x"] * t.num_rows)), shard)
    with pytest.raises(UserError, match="unsafe"):
        write_explorer(folder, "demo")
    pq.write_table(t.set_column(5, "node_id", pa.array(range(t.num_rows))), shard)
    with pytest.raises(UserError, match="node_id is not the row position"):
        write_explorer(folder, "demo")
    (folder / "node_categories.json").unlink()
    with pytest.raises(UserError, match="node_categories.json"):
        write_explorer(folder, "demo")
    with pytest.raises(UserError, match="neighbours must be >= 1"):
        ExplorerParams(neighbours=0)


# ----------------------------------------------------------------------------- the page


def _ready(page, asin: str) -> None:
    page.wait_for_selector(f'#product[data-state="ready"][data-asin="{asin}"]', timeout=20_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#product img')].every(i => i.complete)",
        timeout=20_000,
    )


def test_page_loads_search_finds_neighbours_render(built: dict, chromium) -> None:  # noqa: F811
    out, nodes = built["out"], built["nodes"]
    seen = open_page(chromium, file_url(out / PAGE))
    page = seen.page
    meta = _data(out, "meta.js")
    _ready(page, nodes["asin"][meta["focus"]])
    assert page.inner_text("#heading") == "demo"

    # The sample subgraph: one circle per node, coloured by class, more than one colour.
    circles = page.eval_on_selector_all(
        "#subgraph circle", "cs => cs.map(c => [Number(c.dataset.node), c.getAttribute('fill')])"
    )
    assert sorted(u for u, _ in circles) == meta["sample"]["nodes"]
    assert len({fill for _, fill in circles}) == built["info"].sample_classes >= 2
    assert page.locator("#subgraph line").count() == len(meta["sample"]["edges"])

    # Search by a word of a title, then by an asin.
    target = 17
    asin, title = nodes["asin"][target], nodes["title"][target]
    page.fill("#search", asin.lower())
    first = page.locator("#results li").first
    assert first.get_attribute("data-asin") == asin
    # Every word must occur in the title, in any case: "<Leaf> <part of the asin>".
    query = f"{title.split()[3].upper()} {asin[4:8]}"
    want_hits = [
        a
        for a, t in zip(nodes["asin"], nodes["title"], strict=True)
        if all(w.lower() in t.lower() for w in query.split())
    ]
    page.fill("#search", query)
    hits = page.eval_on_selector_all("#results li", "ls => ls.map(l => l.dataset.asin)")
    assert asin in hits and sorted(hits) == sorted(want_hits)
    page.locator(f'#results li[data-asin="{asin}"]').click()
    _ready(page, asin)

    # The product card.
    row = nodes.row(target, named=True)
    names = json.loads((out / "node_categories.json").read_text())
    assert page.inner_text("#product-title") == title
    assert page.inner_text("#product-asin") == asin
    assert page.inner_text("#product-class") == names[str(row["class"])]
    t, d = built["clip_t"][asin]
    assert page.inner_text("#clip-title") == str(round(t, 4))
    assert page.inner_text("#clip-desc") == str(round(d, 4))
    assert page.locator("#reviews li").count() == min(len(row["reviews"]), PARAMS.reviews)

    # Its neighbours: the heaviest first, each with a decoded image, weight and relation.
    shard = _data(out, f"nodes_{target // 16:04d}.js")
    flat = shard["nbr"][target - shard["start"]]
    want = [(nodes["asin"][flat[j]], flat[j + 1], flat[j + 2]) for j in range(0, len(flat), 3)]
    items = page.locator("#neighbours li.neighbour")
    assert items.count() == len(want) == PARAMS.neighbours
    page.wait_for_function(
        "() => [...document.querySelectorAll('#neighbours img')].every(i => i.complete)"
    )
    for k, (n_asin, weight, rel) in enumerate(want):
        item = items.nth(k)
        assert item.get_attribute("data-asin") == n_asin
        assert f"weight {weight}" in item.inner_text()
        assert f"relation {rel}: relation {rel}" in item.inner_text()
        size = item.locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert size == [12, 10]  # the fixture's JPEGs, decoded

    # Clicking a neighbour opens it.
    items.nth(0).click()
    _ready(page, want[0][0])
    assert seen.console_errors == [] and seen.page_errors == []
    page.close()


def _median_rgb(img: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
    """Median colour of ``box`` (x, y, w, h): robust to the fixture's one odd pixel."""
    x, y, w, h = (int(round(v)) for v in box)
    pixels = np.asarray(img.convert("RGB"), dtype=np.float64)[y : y + h, x : x + w]
    return np.median(pixels.reshape(-1, 3), axis=0)


def _drawn_colour(shot: Image.Image, page, selector: str) -> np.ndarray:
    """The median colour of the middle half of the picture an <img> draws (object-fit:
    contain centres it in its box)."""
    box = page.locator(selector).bounding_box()
    nat_w, nat_h = page.locator(selector).evaluate("i => [i.naturalWidth, i.naturalHeight]")
    scale = min(box["width"] / nat_w, box["height"] / nat_h)
    w, h = nat_w * scale, nat_h * scale
    x = box["x"] + (box["width"] - w) / 2
    y = box["y"] + (box["height"] - h) / 2
    return _median_rgb(shot, (x + w / 4, y + h / 4, w / 2, h / 2))


def test_screenshot_shows_images(built: dict, chromium) -> None:  # noqa: F811
    """A screenshot of the page: not blank, and the product image and the thumbnails are
    drawn in their JPEGs' colours."""
    out, nodes = built["out"], built["nodes"]
    asin = nodes["asin"][5]
    seen = open_page(chromium, file_url(out / PAGE, asin))
    page = seen.page
    _ready(page, asin)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#neighbours img')].every(i => i.complete)"
    )
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    assert shot.size == SCREEN_SIZE
    assert len(shot.getcolors(1 << 20) or []) > 50  # text, chips, images: far from blank
    targets = [("#product-image img", asin)]
    for k in range(1, PARAMS.neighbours + 1):
        li = f"#neighbours li:nth-child({k})"
        targets.append((f"{li} img", page.get_attribute(li, "data-asin")))
    for selector, a in targets:
        source = Image.open(out / "images" / f"{a}.jpg")
        want = _median_rgb(source, (0, 0, *source.size))
        got = _drawn_colour(shot, page, selector)
        assert np.abs(got - want).max() < 12, (selector, got, want)
    assert seen.console_errors == [] and seen.page_errors == []
    page.close()


def test_missing_images_are_marked(built: dict, tmp_path: Path, chromium) -> None:  # noqa: F811
    """A folder with only images.tar: every image is a red mark and the page says why."""
    folder = tmp_path / "no-images"
    folder.mkdir()
    shutil.copy(built["out"] / PAGE, folder / PAGE)
    shutil.copytree(built["out"] / DATA_DIR, folder / DATA_DIR)
    seen = open_page(chromium, file_url(folder / PAGE))
    page = seen.page
    page.wait_for_selector("#product .missing", timeout=20_000)
    page.wait_for_selector("#notice:not([hidden])")
    assert "tar xf images.tar" in page.inner_text("#notice")
    assert seen.page_errors == []
    assert all("ERR_FILE_NOT_FOUND" in m for m in seen.console_errors)  # only the images
    page.close()


def test_hostile_text_stays_text(built: dict, tmp_path: Path, chromium) -> None:  # noqa: F811
    folder = tmp_path / "hostile"
    shutil.copytree(built["out"], folder, ignore=shutil.ignore_patterns("embeddings"))
    shard = folder / "node_attributes" / "node_attributes_0.parquet"
    t = pq.read_table(shard)
    evil = '<img src=x onerror="document.body.dataset.pwned=1"></script>"\u2028'
    titles = [evil] + t.column("title").to_pylist()[1:]
    pq.write_table(t.set_column(1, "title", pa.array(titles)), shard)
    write_explorer(folder, "demo</title><b>", p=PARAMS)
    seen = open_page(chromium, file_url(folder / PAGE, t.column("asin")[0].as_py()))
    page = seen.page
    _ready(page, t.column("asin")[0].as_py())
    assert page.inner_text("#product-title") == " ".join(evil.split())
    assert page.evaluate("document.body.dataset.pwned") is None
    assert page.inner_text("#heading") == "demo</title><b>"
    assert not page.is_visible("#clip-title")  # no CLIP-T given: its rows are hidden
    assert seen.page_errors == []
    page.close()


def test_build_time_screenshot(built: dict, tmp_path: Path, chromium) -> None:  # noqa: F811
    """take_screenshot (chromium --headless --screenshot): from images.tar alone, the same
    bytes twice, the focus product's image drawn. (``chromium``: skip where none starts.)"""
    folder = tmp_path / "tar-only"
    shutil.copytree(built["out"], folder, ignore=shutil.ignore_patterns("images", "embeddings"))
    info = write_explorer(folder, "demo", p=dataclasses.replace(PARAMS, screenshot=True))
    first = folder / "explorer.png"
    assert info.screenshot == "explorer.png" and "explorer.png" in info.files
    second = take_screenshot(folder, tmp_path / "again.png")
    assert first.read_bytes() == second.read_bytes()
    shot = Image.open(first).convert("RGB")
    assert shot.size == SCREEN_SIZE
    assert not (folder / "images").exists()  # staged elsewhere
    # The focus product's image fills much of the card's top left corner.
    source = Image.open(built["out"] / "images" / f"{built['info'].focus_asin}.jpg")
    colour = _median_rgb(source, (0, 0, *source.size))
    pixels = np.asarray(shot, dtype=np.float64)[60:400, :300].reshape(-1, 3)
    assert (np.abs(pixels - colour).max(axis=1) < 12).sum() > 10_000
