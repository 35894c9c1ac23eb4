"""explorer.html: a static page to look at a published category folder (issue #15 item 5).

Search by title or ASIN, a product card (image, title, class, CLIP-T, reviews), its heaviest
co-purchase neighbours as thumbnails with edge weights and relation texts, and a sample
subgraph spanning several classes drawn as an inline SVG. Builders use it to see at a glance
whether images, titles and edges make sense.

Everything works from ``file://`` with no server: browsers refuse ``fetch()`` of local files,
so the data are ``.js`` files that hand a JSON value to a global. Written beside the folder's
other files::

    explorer.html               the page (static, from explorer_static/)
    explorer/explorer.js, .css  its code and style (static)
    explorer/meta.js            category, class names, relation texts, the sample subgraph
    explorer/index.js           every node's asin, title (shortened), class and degree
    explorer/nodes_<k>.js       per node: top neighbours, a few shortened reviews, CLIP-T;
                                loaded on demand, ``shard_nodes`` nodes per file
    explorer.png                a screenshot, only when asked for (``screenshot``: opt-in,
                                since its bytes depend on the Chromium build and fonts)

Images are read from ``images/{asin}.jpg`` beside the page: a downloaded folder has them
(``acmmg download`` extracts images.tar); in a folder with only images.tar the page says so.

Size: every field is cut to a fixed length, so the bytes per node are bounded (see
``bytes_bound``); at Electronics size (98 k nodes) the defaults stay under 40 MB, all files
together, and the page holds only the index and the shards it opened.

Determinism: the files are a pure function of the folder's files, ``clip_t`` and the
parameters (JSON with sorted keys, floats rounded, a seeded layout rounded to 0.1 px).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import workdir
from pipeline.errors import UserError
from pipeline.params import param

PAGE = "explorer.html"
DATA_DIR = "explorer"
SCREENSHOT = "explorer.png"
# Package file (explorer_static/) -> its place in the category folder.
STATIC_FILES = {
    "explorer.html": PAGE,
    "explorer.js": f"{DATA_DIR}/explorer.js",
    "explorer.css": f"{DATA_DIR}/explorer.css",
}
SAFE_ASIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags for a headless Chromium on a machine without network, GPU or a user profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
# Rasterise in one thread, everything drawn before the capture: without these, two shots of
# the same page differ in a few anti-aliased pixels.
SCREENSHOT_FLAGS = (
    "--run-all-compositor-stages-before-draw",
    "--disable-threaded-animation",
    "--disable-threaded-scrolling",
    "--disable-checker-imaging",
    "--num-raster-threads=1",
    "--force-color-profile=srgb",
    "--disable-lcd-text",
    "--font-render-hinting=none",
)
SCREEN_SIZE = (1280, 1000)
ELLIPSIS = "…"
SAMPLE_EDGES = 3  # heaviest edges drawn per node of the sample subgraph


@dataclass(frozen=True)
class ExplorerParams:
    neighbours: int = param(8, "co-purchase neighbours per node on the page (heaviest first)")
    reviews: int = param(2, "reviews per node on the page (the published order: most helpful)")
    review_chars: int = param(80, "characters kept of each review on the page")
    title_chars: int = param(90, "characters kept of each title on the page")
    shard_nodes: int = param(4096, "nodes per explorer/nodes_<k>.js file")
    sample_nodes: int = param(30, "nodes of the page's sample subgraph")
    seed: int = param(0, "seed of the sample subgraph and its layout")
    screenshot: bool = param(
        False,
        "also write explorer.png, the page shot by headless Chromium (needs chromium; the "
        "bytes depend on its build and the fonts installed)",
    )

    def __post_init__(self) -> None:
        for name in ("neighbours", "title_chars", "shard_nodes", "sample_nodes"):
            if getattr(self, name) < 1:
                raise UserError(f"explorer {name} must be >= 1, got {getattr(self, name)}")
        if self.reviews < 0 or self.review_chars < 1:
            raise UserError("explorer reviews must be >= 0 and review_chars >= 1")


@dataclass(frozen=True)
class ExplorerInfo:
    """What ``write_explorer`` wrote: file paths relative to the folder, their total bytes,
    the node the page opens on and the screenshot shows (the sample's first node), the
    sample's classes, and the screenshot's file name when one was asked for."""

    files: tuple[str, ...]
    bytes: int
    focus_asin: str
    sample_classes: int
    screenshot: str | None = None


# ----------------------------------------------------------------------------- inputs


def read_clip_t(work: Path) -> dict[str, tuple[float | None, float | None]]:
    """{asin: (CLIP-T of the title, of the description)} from a work directory's clip
    scores; {} when the clip stage has not run (the page then shows none)."""
    path = Path(work) / workdir.CLIP_SCORES
    if not path.exists():
        return {}
    t = pq.read_table(path, columns=["asin", "clip_t_title", "clip_t_desc"])
    cols = [t.column(c).to_pylist() for c in ("asin", "clip_t_title", "clip_t_desc")]
    return {a: (ti, de) for a, ti, de in zip(*cols, strict=True)}


def _shard_paths(folder: Path) -> list[Path]:
    paths = list((folder / "node_attributes").glob("node_attributes_*.parquet"))
    if not paths:
        raise UserError(f"{folder}: no node_attributes/node_attributes_<k>.parquet")

    def k(p: Path) -> int:
        tail = p.stem.rsplit("_", 1)[-1]
        if not tail.isdigit():
            raise UserError(f"{p}: shard file name is not node_attributes_<number>.parquet")
        return int(tail)

    return sorted(paths, key=k)


def _class_names(folder: Path) -> list[str]:
    path = folder / "node_categories.json"
    if not path.exists():
        raise UserError(f"{folder}: no node_categories.json")
    mapping = json.loads(path.read_text())
    try:
        ids = sorted(int(k) for k in mapping)
    except ValueError:
        raise UserError(f"{path}: class indices must be integers") from None
    if ids != list(range(len(ids))):
        raise UserError(f"{path}: class indices must be 0..{len(ids) - 1}")
    return [str(mapping[str(i)]) for i in ids]


def _relation_texts(folder: Path) -> dict[str, str]:
    """Relation id -> text: relations.json holds a list of {"id", "text", ...} (the relations
    stage) or a plain {"<id>": "<text>"} mapping."""
    path = folder / "relations.json"
    if not path.exists():
        return {}
    rels = json.loads(path.read_text()).get("relations", [])
    items = rels.items() if isinstance(rels, dict) else ((r.get("id"), r) for r in rels)
    out = {}
    for rid, r in items:
        text = r.get("text") if isinstance(r, dict) else r
        if rid is None or not isinstance(text, str):
            raise UserError(f"{path}: every relation needs an id and a text")
        out[str(int(rid))] = text
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


@dataclass(frozen=True)
class _Adjacency:
    """Both directions of every edge, by node, heaviest first then by neighbour id."""

    indptr: np.ndarray
    nbr: np.ndarray
    weight: np.ndarray
    relation: np.ndarray  # -1 where an edge has no relation
    edges: int

    def of(self, u: int) -> slice:
        return slice(int(self.indptr[u]), int(self.indptr[u + 1]))


def _adjacency(folder: Path, n: int) -> _Adjacency:
    path = folder / "edges.parquet"
    if not path.exists():
        raise UserError(f"{folder}: no edges.parquet")
    names = pq.read_schema(path).names
    cols = ["src", "dst", "weight"] + (["relation_id"] if "relation_id" in names else [])
    t = pq.read_table(path, columns=cols)
    src = t.column("src").to_numpy().astype(np.int64)
    dst = t.column("dst").to_numpy().astype(np.int64)
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise UserError(f"{path}: node ids outside 0..{n - 1}")
    w = t.column("weight").to_numpy().astype(np.int64)
    if "relation_id" in cols:
        rel = pc.fill_null(t.column("relation_id"), -1).to_numpy().astype(np.int64)
    else:
        rel = np.full(src.size, -1, dtype=np.int64)
    u = np.concatenate([src, dst])
    v = np.concatenate([dst, src])
    order = np.lexsort((v, -np.concatenate([w, w]), u))
    return _Adjacency(
        indptr=np.searchsorted(u[order], np.arange(n + 1)),
        nbr=v[order],
        weight=np.concatenate([w, w])[order],
        relation=np.concatenate([rel, rel])[order],
        edges=int(src.size),
    )


# ----------------------------------------------------------------------------- sample


def sample_subgraph(
    classes: np.ndarray, adj: _Adjacency, size: int, seed: int, per_node: int = SAMPLE_EDGES
) -> tuple[list[int], list[tuple[int, int, int, int]]]:
    """A connected sample that spans as many classes as it can reach: from a seeded start
    node, repeatedly add the frontier node whose class is least represented so far (then the
    heaviest edge to the sample, then the lowest id). Returns the nodes and the edges drawn
    (u, v, weight, relation), u < v: the edges that grew the sample (so it is connected) and
    each node's ``per_node`` heaviest edges inside it (co-purchase graphs are dense: all
    induced edges would draw a hairball)."""
    n = len(classes)
    if n == 0:
        return [], []
    with_edges = np.flatnonzero(np.diff(adj.indptr) > 0)
    start = (
        int(with_edges[random.Random(seed).randrange(with_edges.size)]) if with_edges.size else 0
    )
    picked, seen = [start], {start}
    counts = Counter({int(classes[start]): 1})
    frontier: dict[int, tuple[int, int]] = {}  # node -> (heaviest weight to the sample, from)
    drawn: set[tuple[int, int]] = set()

    def grow(u: int) -> None:
        s = adj.of(u)
        for v, w in zip(adj.nbr[s].tolist(), adj.weight[s].tolist(), strict=True):
            if v not in seen and w > frontier.get(v, (0, -1))[0]:
                frontier[v] = (w, u)

    grow(start)
    while frontier and len(picked) < size:
        v = min(frontier, key=lambda x: (counts[int(classes[x])], -frontier[x][0], x))
        u = frontier.pop(v)[1]
        drawn.add((min(u, v), max(u, v)))
        picked.append(v)
        seen.add(v)
        counts[int(classes[v])] += 1
        grow(v)
    edges = {}
    for u in picked:
        s = adj.of(u)
        inside = [
            (v, w, r)
            for v, w, r in zip(
                adj.nbr[s].tolist(), adj.weight[s].tolist(), adj.relation[s].tolist(), strict=True
            )
            if v in seen
        ]
        for rank, (v, w, r) in enumerate(inside):
            key = (min(u, v), max(u, v))
            if rank < per_node or key in drawn:
                edges[key] = (*key, w, r)
    return picked, sorted(edges.values())


def layout(
    nodes: list[int], edges: list[tuple[int, int, int, int]], seed: int, box=(1000, 700)
) -> dict[int, tuple[float, float]]:
    """Seeded spring layout scaled into ``box`` with a margin, rounded to 0.1 px."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(sorted(nodes))
    g.add_edges_from((u, v) for u, v, _, _ in edges)
    if len(nodes) == 1:
        return {nodes[0]: (box[0] / 2, box[1] / 2)}
    pos = nx.spring_layout(g, seed=seed, k=1.8 / math.sqrt(len(nodes)), iterations=200)
    xy = np.array([pos[u] for u in sorted(nodes)], dtype=np.float64)
    lo, span = xy.min(axis=0), np.maximum(np.ptp(xy, axis=0), 1e-9)
    margin = 40.0
    scaled = margin + (xy - lo) / span * (np.array(box, dtype=np.float64) - 2 * margin)
    return {u: (round(float(x), 1), round(float(y), 1)) for u, (x, y) in zip(sorted(nodes), scaled)}


# ----------------------------------------------------------------------------- writing


def _cut(text: str | None, chars: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + ELLIPSIS


def _score(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


def _js(global_call: str, value: Any) -> bytes:
    """``<global_call>(<JSON>);`` with sorted keys, so the bytes are deterministic."""
    body = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return f"{global_call}({body});\n".encode()


def bytes_bound(n: int, p: ExplorerParams = ExplorerParams(), id_digits: int = 7) -> int:
    """An upper bound of index.js + nodes_*.js for ``n`` nodes whose texts are ASCII without
    quotes or backslashes (each further UTF-8 byte or JSON escape adds one), asins of at
    most 12 characters, node ids of at most ``id_digits`` digits, weights and relation ids
    below 10**5: every field is cut to a fixed length, so the bytes per node are bounded."""
    cut = 2  # the ellipsis takes 3 bytes for the 1 character it replaces
    index = (12 + 3) + (p.title_chars + cut + 3) + 4 + (id_digits + 1)
    nbrs = 3 + p.neighbours * ((id_digits + 1) + 6 + 6)
    reviews = 3 + p.reviews * (p.review_chars + cut + 3) + 6
    clip = 2 * 9 + 4
    shards = math.ceil(n / p.shard_nodes)
    return n * (index + nbrs + reviews + clip) + shards * 200 + 200


def _write(folder: Path, rel: str, data: bytes, written: list[str]) -> None:
    dest = folder / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    written.append(rel)


@dataclass
class _Index:
    """Every node's asin, shortened title and class, in node order."""

    asins: list[str]
    titles: list[str]
    classes: list[int]


def _read_index(paths: list[Path], title_chars: int) -> _Index:
    out = _Index([], [], [])
    for path in paths:
        batches = pq.ParquetFile(path).iter_batches(
            batch_size=8192, columns=["node_id", "asin", "title", "class"]
        )
        for batch in batches:
            ids = batch.column("node_id").to_numpy(zero_copy_only=False)
            at = len(out.asins)
            if not np.array_equal(ids, np.arange(at, at + len(ids))):
                raise UserError(f"{path}: node_id is not the row position across the shards")
            for a in batch.column("asin").to_pylist():
                if not isinstance(a, str) or not SAFE_ASIN.match(a):
                    raise UserError(f"{path}: asin {a!r} is unsafe as an image file name")
                out.asins.append(a)
            out.titles.extend(_cut(t, title_chars) for t in batch.column("title").to_pylist())
            out.classes.extend(
                -1 if c is None else int(c) for c in batch.column("class").to_pylist()
            )
    return out


def _node_details(
    paths: list[Path], adj: _Adjacency, asins: list[str], clip_t: Mapping, p: ExplorerParams
) -> Iterator[dict[str, list]]:
    """The per-node data in node order, ``p.shard_nodes`` nodes at a time: the heaviest
    neighbours as flat (id, weight, relation) triples, the first reviews cut short, the
    review count and the CLIP-T scores. Reviews are read a batch at a time."""
    shard: dict[str, list] = {"nbr": [], "reviews": [], "n_reviews": [], "clip_t": []}
    node = 0
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=["reviews"]):
            col = batch.column("reviews")
            counts = pc.fill_null(pc.list_value_length(col), 0).to_pylist()
            kept = pc.list_slice(col, 0, p.reviews).to_pylist() if p.reviews else [[]] * len(col)
            for revs, count in zip(kept, counts, strict=True):
                s = adj.of(node)
                top = slice(s.start, min(s.stop, s.start + p.neighbours))
                flat = np.stack([adj.nbr[top], adj.weight[top], adj.relation[top]], axis=1)
                t, d = clip_t.get(asins[node], (None, None))
                shard["nbr"].append(flat.ravel().tolist())
                shard["reviews"].append(
                    [_cut(r, p.review_chars) for r in revs or [] if r is not None]
                )
                shard["n_reviews"].append(int(count))
                shard["clip_t"].append([_score(t), _score(d)])
                node += 1
                if len(shard["nbr"]) == p.shard_nodes:
                    yield shard
                    shard = {k: [] for k in shard}
    if shard["nbr"]:
        yield shard


def write_explorer(
    folder: Path,
    category: str,
    clip_t: Mapping[str, tuple[float | None, float | None]] | None = None,
    p: ExplorerParams = ExplorerParams(),
) -> ExplorerInfo:
    """Write explorer.html and explorer/ into the category ``folder`` from its published
    files (node_attributes/, edges.parquet, node_categories.json, relations.json).
    ``clip_t`` maps an asin to its (title, description) CLIP-T scores; the published files
    do not hold them (pass ``read_clip_t(work)``); None leaves them off the page. With
    ``p.screenshot`` also explorer.png (``take_screenshot``; a UserError without Chromium)."""
    folder = Path(folder)
    chromium = _require_chromium() if p.screenshot else None  # before the work, not after
    class_names = _class_names(folder)
    relations = _relation_texts(folder)
    paths = _shard_paths(folder)
    idx = _read_index(paths, p.title_chars)
    n = len(idx.asins)
    if n == 0:
        raise UserError(f"{folder}: no nodes")
    cls = np.asarray(idx.classes, dtype=np.int64)
    if not class_names and (cls == -1).all():  # no taxonomy: one colour, "no class"
        class_names = ["(no class)"]
        cls = np.zeros_like(cls)
        idx.classes[:] = [0] * n
    if cls.min() < 0 or cls.max() >= len(class_names):
        raise UserError(f"{folder}: node classes missing or outside node_categories.json")
    adj = _adjacency(folder, n)

    if (folder / DATA_DIR).exists():  # a rerun into the same folder: no stale shard may stay
        shutil.rmtree(folder / DATA_DIR)
    written: list[str] = []
    index = {
        "asin": idx.asins,
        "class": idx.classes,
        "degree": np.diff(adj.indptr).tolist(),
        "title": idx.titles,
    }
    _write(folder, f"{DATA_DIR}/index.js", _js("ACMMG_EXPLORER.index", index), written)
    start = 0
    for shard in _node_details(paths, adj, idx.asins, clip_t or {}, p):
        name = f"{DATA_DIR}/nodes_{start // p.shard_nodes:04d}.js"
        _write(folder, name, _js("ACMMG_EXPLORER.shard", {"start": start, **shard}), written)
        start += len(shard["nbr"])

    nodes, edges = sample_subgraph(cls, adj, p.sample_nodes, p.seed)
    pos = layout(nodes, edges, p.seed)
    meta = {
        "category": category,
        "classes": class_names,
        "relations": relations,
        "nodes": n,
        "edges": adj.edges,
        "shard_nodes": p.shard_nodes,
        "shards": math.ceil(n / p.shard_nodes),
        "neighbours": p.neighbours,
        "has_clip_t": bool(clip_t),
        "focus": nodes[0],
        "sample": {
            "nodes": sorted(nodes),
            "x": [pos[u][0] for u in sorted(nodes)],
            "y": [pos[u][1] for u in sorted(nodes)],
            "edges": [list(e) for e in edges],
        },
    }
    _write(folder, f"{DATA_DIR}/meta.js", _js("ACMMG_EXPLORER.meta", meta), written)
    static = resources.files("pipeline.publish") / "explorer_static"
    for name, rel in STATIC_FILES.items():
        _write(folder, rel, (static / name).read_bytes(), written)
    if p.screenshot:
        take_screenshot(folder, folder / SCREENSHOT, chromium=chromium)
        written.append(SCREENSHOT)
    return ExplorerInfo(
        files=tuple(sorted(written)),
        bytes=sum((folder / f).stat().st_size for f in written),
        focus_asin=idx.asins[nodes[0]],
        sample_classes=len({int(cls[u]) for u in nodes}),
        screenshot=SCREENSHOT if p.screenshot else None,
    )


# ----------------------------------------------------------------------------- screenshot


def find_chromium() -> str | None:
    """The Chromium to drive: $ACMMG_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    env = os.environ.get("ACMMG_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _require_chromium() -> str:
    found = find_chromium()
    if not found:
        raise UserError(
            "no Chromium for the explorer screenshot: install it (apt-get install chromium) "
            "or set ACMMG_CHROMIUM"
        )
    return found


def take_screenshot(
    folder: Path,
    dest: Path | None = None,
    asin: str | None = None,
    chromium: str | None = None,
    timeout_s: float = 120.0,
) -> Path:
    """A PNG of explorer.html showing ``asin`` (default: the sample's first node), taken by
    ``chromium --headless --screenshot`` at SCREEN_SIZE; returns its path (default
    ``folder/explorer.png``). The page and the images of that product and its neighbours are
    staged in a temporary folder (from images/ or images.tar), so the folder itself gains
    only the PNG. The bytes depend on the Chromium build and the fonts installed."""
    folder = Path(folder)
    dest = Path(dest) if dest else folder / SCREENSHOT
    chromium = chromium or _require_chromium()
    if not (folder / PAGE).exists():
        raise UserError(f"{folder}: no {PAGE} (write_explorer first)")
    meta = _read_js_value(folder / DATA_DIR / "meta.js", "ACMMG_EXPLORER.meta")
    index = _read_js_value(folder / DATA_DIR / "index.js", "ACMMG_EXPLORER.index")
    node = index["asin"].index(asin) if asin else int(meta["focus"])
    k = node // meta["shard_nodes"]
    shard = _read_js_value(folder / DATA_DIR / f"nodes_{k:04d}.js", "ACMMG_EXPLORER.shard")
    nbrs = shard["nbr"][node - shard["start"]][0::3]
    wanted = [index["asin"][u] for u in [node, *nbrs]]
    with tempfile.TemporaryDirectory(prefix="acmmg-explorer-") as tmp:
        stage = Path(tmp) / "folder"
        stage.mkdir()
        shutil.copy2(folder / PAGE, stage / PAGE)
        shutil.copytree(folder / DATA_DIR, stage / DATA_DIR)
        _stage_images(folder, stage / "images", wanted)
        out = Path(tmp) / "shot.png"
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            *SCREENSHOT_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--window-size={SCREEN_SIZE[0]},{SCREEN_SIZE[1]}",
            "--virtual-time-budget=10000",
            f"--screenshot={out}",
            (stage / PAGE).as_uri() + f"#{index['asin'][node]}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise UserError(f"chromium took over {timeout_s:.0f} s for the screenshot") from None
        if proc.returncode != 0 or not out.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"chromium could not take the screenshot: {last}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, dest)
    return dest


def _read_js_value(path: Path, global_call: str) -> Any:
    text = path.read_text()
    head, tail = f"{global_call}(", ");\n"
    if not (text.startswith(head) and text.endswith(tail)):
        raise UserError(f"{path}: not an explorer data file")
    return json.loads(text[len(head) : -len(tail)])


def _stage_images(folder: Path, dest: Path, asins: list[str]) -> None:
    """Copy images/{asin}.jpg of ``asins`` into ``dest`` from images/ or images.tar."""
    dest.mkdir()
    names = {f"images/{a}.jpg" for a in asins}
    if (folder / "images").is_dir():
        for name in sorted(names):
            src = folder / name
            if src.is_file():
                shutil.copyfile(src, dest / Path(name).name)
        return
    tar_path = folder / "images.tar"
    if not tar_path.exists():
        return  # a text-only category: the page shows its "no image" marks
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if member.name in names and member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    (dest / Path(member.name).name).write_bytes(f.read())
                names.discard(member.name)
                if not names:
                    break
