"""Round trips of the published ACMMG category folder on a generated work directory."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from pipeline.categories import load_registry
from pipeline.classes import ClassesParams
from pipeline.errors import UserError
from pipeline.io import sha256_file
from pipeline.publish.assemble import AssembleParams, assemble_category
from pipeline.publish.dgl_format import read_dgl_graph
from pipeline.publish.plots import PLOTS, degree_ccdf, sample_subgraph
from pipeline.publish.writers.manifest import content_version
from pipeline.reviews_select import select_reviews
from pipeline.runner import run_stage
from pipeline.stages import CLASSES
from tests.assemble_fixtures import CLIP_MODEL, make_work

N = 60
KINDS = ("image", "title", "description", "combined")
EPOCH = "1700000000"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("assemble")
    work = root / "work"
    info = make_work(work, n=N)
    run_stage(CLASSES, work, ClassesParams(min_classes=2, max_classes=5, min_items_per_class=5))
    mp = pytest.MonkeyPatch()
    mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
    try:
        params = {"k": 5, "min_copurchase": 3, "clip_t_min": 20.0}
        out1 = assemble_category(
            work,
            root / "out1" / "Electronics",
            AssembleParams(category="Electronics", build_params=params, shard_rows=25),
        )
        out2 = assemble_category(
            work,
            root / "out2" / "Electronics",
            AssembleParams(category="Electronics", build_params=params, shard_rows=25),
        )
    finally:
        mp.undo()
    return {"root": root, "work": work, "info": info, "out": out1, "out2": out2}


def _nodes(out: Path) -> pl.DataFrame:
    shards = sorted(
        (out / "node_attributes").glob("node_attributes_*.parquet"),
        key=lambda p: int(p.stem.rsplit("_", 1)[1]),
    )
    return pl.concat([pl.read_parquet(p) for p in shards])


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_every_file_present(built: dict) -> None:
    out = built["out"]
    expected = {
        "node_attributes/node_attributes_0.parquet",
        "node_attributes/node_attributes_1.parquet",
        "node_attributes/node_attributes_2.parquet",
        "dgl_graph.dgl",
        "node_categories.json",
        "images.tar",
        "edges.parquet",
        "splits.parquet",
        "edge_splits.parquet",
        "relations.json",
        "manifest.json",
        "README.md",
        *PLOTS.values(),
        *(f"embeddings/{k}_embeds.pt" for k in KINDS),
        *(f"embeddings/{k}_embeds.npy" for k in KINDS),
    }
    page = {f for f in _files(out) if f == "explorer.html" or f.startswith("explorer/")}
    assert {"explorer.html", "explorer/explorer.js", "explorer/index.js"} <= page
    assert set(_files(out)) - page == expected
    # No temp folders left beside the output.
    assert [p.name for p in out.parent.iterdir()] == ["Electronics"]


def test_manifest_lists_every_other_file_with_hashes(built: dict) -> None:
    out = built["out"]
    m = json.loads((out / "manifest.json").read_text())
    files = set(_files(out)) - {"manifest.json"}
    assert set(m["files"]) == files
    for rel, meta in m["files"].items():
        assert meta["size"] == (out / rel).stat().st_size
        assert meta["sha256"] == sha256_file(out / rel)
    assert m["version"] == content_version(m["files"])
    assert len(m["version"]) == 16
    assert m["build_time"] == "2023-11-14T22:13:20Z"  # from SOURCE_DATE_EPOCH
    assert m["pipeline_version"]
    assert m["params"]["k"] == 5 and m["params"]["max_reviews"] == 25
    assert m["params"]["shard_rows"] == 25 and m["params"]["seed"] == 0
    assert [s["uri"] for s in m["sources"]] == ["Demo.jsonl.gz", "meta_Demo.jsonl.gz"]
    assert m["sources"][0]["sha256"] == "ab" * 32
    assert m["stats"]["classes"]["level"] == 1
    # The model an export needs to embed new text in the same space (clip/meta.json).
    assert m["clip"] == CLIP_MODEL
    assert m["reference"] is None  # "Electronics" is not a registry slug: no Table 1 row
    assert m["params"]["negatives"] == 50 and m["params"]["edge_ratios"] == [0.8, 0.1, 0.1]


def test_counts_consistent_across_files(built: dict) -> None:
    out = built["out"]
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    nodes = _nodes(out)
    edges = pl.read_parquet(out / "edges.parquet")
    g = read_dgl_graph(out / "dgl_graph.dgl")
    cats = json.loads((out / "node_categories.json").read_text())
    with tarfile.open(out / "images.tar") as tar:
        members = tar.getmembers()
    assert c["nodes"] == N == nodes.height == g["num_nodes"] == len(members)
    assert c["images"] == len(members)
    assert c["edges"] == edges.height == len(g["src"]) // 2 == len(built["info"]["edges"])
    assert c["directed_edges"] == len(g["src"])
    assert c["classes"] == len(cats) == 4
    assert c["node_attribute_shards"] == 3
    assert c["reviews"] == nodes["reviews"].list.len().sum()
    assert c["train"] + c["val"] + c["test"] == N
    assert (c["train"], c["val"], c["test"]) == (36, 6, 18)
    for k in KINDS:
        t = torch.load(out / "embeddings" / f"{k}_embeds.pt", weights_only=True)
        assert tuple(t.shape) == (N, c["embedding_dims"][k])
    readme = (out / "README.md").read_text()
    assert f"| Electronics | {N} | {c['edges']} |" in readme


def test_node_i_is_the_same_product_everywhere(built: dict) -> None:
    out, info = built["out"], built["info"]
    nodes = _nodes(out)
    asins = nodes["asin"].to_list()
    # The ACMMG columns in the card's order, then the extras.
    assert nodes.columns == ["asin", "title", "desc", "class", "reviews", "node_id", "image_url"]
    assert nodes["node_id"].to_list() == list(range(N))
    assert asins == sorted(info["asins"])
    assert nodes["image_url"].to_list() == [f"http://127.0.0.1/images/{a}.jpg" for a in asins]
    classes = pl.read_parquet(built["work"] / "classes.parquet")
    cls = dict(classes.select("asin", "class").iter_rows())
    cats = json.loads((out / "node_categories.json").read_text())
    for row in nodes.iter_rows(named=True):
        assert row["class"] == cls[row["asin"]]
        assert cats[str(row["class"])] == info["cats"][row["asin"]][1]
        assert row["title"].startswith(f"Product {row['asin']} ")

    # Embeddings: row i = node i (the clip index had the rows in another order).
    pos = {a: i for i, a in enumerate(info["asins"])}
    for k in KINDS:
        t = torch.load(out / "embeddings" / f"{k}_embeds.pt", weights_only=True)
        assert t.dtype == torch.float32 and t.is_contiguous()
        mm = np.load(out / "embeddings" / f"{k}_embeds.npy", mmap_mode="r")
        assert np.array_equal(mm, t.numpy())
        for i, a in enumerate(asins):
            assert np.array_equal(t[i].numpy(), info["embeds"][k][info["rows"][pos[a]]])

    # Images: member i is images/{asin_i}.jpg with that product's bytes, fixed metadata.
    with tarfile.open(out / "images.tar") as tar:
        members = tar.getmembers()
        assert [mem.name for mem in members] == [f"images/{a}.jpg" for a in asins]
        for mem, a in zip(members, asins, strict=True):
            data = tar.extractfile(mem).read()
            assert data == info["image_bytes"][a]
            assert (mem.mtime, mem.uid, mem.gid, mem.uname, mem.gname) == (0, 0, 0, "", "")
            assert Image.open(io.BytesIO(data)).format == "JPEG"

    # DGL: labels, masks and both directions of every edge.
    g = read_dgl_graph(out / "dgl_graph.dgl")
    assert np.array_equal(g["ndata"]["label"], nodes["class"].to_numpy())
    masks = np.stack([g["ndata"][f"{s}_mask"] for s in ("train", "val", "test")])
    assert np.all(masks.sum(axis=0) == 1)
    splits = pl.read_parquet(out / "splits.parquet")
    assert splits["asin"].to_list() == asins
    assert np.array_equal(
        g["ndata"]["train_mask"].astype(bool), (splits["split"] == "train").to_numpy()
    )
    edges = pl.read_parquet(out / "edges.parquet")
    e = len(edges)
    assert np.array_equal(g["src"][:e], edges["src"].to_numpy())
    assert np.array_equal(g["dst"][:e], edges["dst"].to_numpy())
    assert np.array_equal(g["src"][e:], edges["dst"].to_numpy())
    assert np.array_equal(g["dst"][e:], edges["src"].to_numpy())
    assert g["edata"]["weight"].dtype == np.float32
    assert np.array_equal(g["edata"]["weight"][:e], edges["weight"].to_numpy().astype(np.float32))
    assert np.array_equal(g["edata"]["weight"][e:], g["edata"]["weight"][:e])

    # Edges: node ids map back to the work dir's asin pairs and weights.
    assert edges.columns == ["src", "dst", "weight", "relation_id", "relation_users"]
    assert (edges["src"] < edges["dst"]).all()
    assert edges.select("src", "dst").rows() == sorted(edges.select("src", "dst").rows())
    want = {(r[0], r[1]): r[2] for r in info["edges"].iter_rows()}
    got = {(asins[s], asins[d]): w for s, d, w, *_ in edges.iter_rows()}
    assert got == want
    assert edges["relation_id"].null_count() == 0
    assert np.array_equal(edges["relation_id"].to_numpy(), edges["weight"].to_numpy() % 3)
    assert np.array_equal(g["edata"]["relation_id"][:e], edges["relation_id"].to_numpy())


def test_reviews_capped_ordered_and_text_only(built: dict) -> None:
    out, info = built["out"], built["info"]
    nodes = _nodes(out)
    reviews = info["reviews"]
    for row in nodes.iter_rows(named=True):
        mine = reviews.filter(
            (pl.col("asin") == row["asin"]) & (pl.col("text").str.strip_chars() != "")
        ).sort(["helpful_votes", "ts", "user_id", "text"], descending=[True, True, False, False])
        assert row["reviews"] == mine["text"].head(25).to_list()
    counts = nodes["reviews"].list.len()
    assert counts.max() == 25  # node with 40 reviews capped
    assert (counts == 0).sum() >= 10  # nodes without reviews get an empty list
    # Direct call: the cap and nodes without reviews.
    sel = select_reviews(built["work"] / "reviews.parquet", info["asins"][:5], max_reviews=3)
    assert sel["n_reviews"].max() <= 3
    assert select_reviews(built["work"] / "reviews.parquet", info["asins"], 0).is_empty()


def test_review_selection_under_a_tight_memory_limit_is_the_same(built: dict, tmp_path) -> None:
    # The sort of the texts spills past the limit (pipeline.db) instead of growing: same rows.
    path = built["work"] / "reviews.parquet"
    free = select_reviews(path, built["info"]["asins"], memory_limit="8GB")
    tight = select_reviews(
        path, built["info"]["asins"], memory_limit="16MB", temp_directory=tmp_path, threads=1
    )
    assert tight.equals(free)


def test_two_builds_byte_identical(built: dict) -> None:
    a, b = _files(built["out"]), _files(built["out2"])
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert differing == []


def test_build_time_only_in_manifest(built: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    out = assemble_category(
        built["work"],
        tmp_path / "Electronics",
        AssembleParams(
            category="Electronics",
            build_params={"k": 5, "min_copurchase": 3, "clip_t_min": 20.0},
            shard_rows=25,
        ),
    )
    a, b = _files(built["out"]), _files(out)
    assert [k for k in a if a[k] != b[k]] == ["manifest.json"]
    ma, mb = (json.loads(x["manifest.json"]) for x in (a, b))
    assert ma["version"] == mb["version"] and ma["build_time"] != mb["build_time"]


def test_card_and_plots(built: dict) -> None:
    out = built["out"]
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n")
    header = readme.split("---\n")[1]
    assert "license: cc-by-4.0" in header and "size_categories:" in header
    assert "| Main Category | Nodes | Edges | CLIP-T Title | CLIP-T Description |" in readme
    scores = pl.read_parquet(built["work"] / "clip" / "scores.parquet")
    t = scores["clip_t_title"].to_numpy()
    assert f"{t.mean():.1f} ± {t.std():.1f}" in readme
    for section in (
        "## Classes",
        "## How it was built",
        "## How to load",
        "## License",
        "## Citation",
        "dgl.load_graphs",
        "torch_geometric",
        "pl.read_parquet",
    ):
        assert section in readme
    assert "| 0 | Audio | 15 | 25.0% |" in readme
    assert "| build | reviews_read |" in readme
    assert "2023-11-14" not in readme  # no build time in the card
    for section in ("## Standard tasks", "## Faithful to the papers", "## Relations (RCML)"):
        assert section in readme
    assert 'tar.extractall(category_path, filter="data")' in readme
    assert "tar.extractall(category_path)\n" not in readme
    assert "SLIP Table 1 has no row for this category" in readme
    # The CLIP-T cut: the product's own rule, as the filter applied it, and an uncut build.
    assert "The CLIP-T cut is the product's own choice" in readme
    assert "thresholds, fixed once over the candidates before the k-core fixpoint: title " in readme
    assert "22.50, description 20.25. 4 nodes were removed by CLIP-T" in readme
    assert "`--set min_clip_t=none --set clip_t_percentile=none`" in readme
    assert "| k-core | k = 5," in readme and "same (setting `k`) |" in readme
    assert "`pipeline/training/README.md`" in readme
    # What images.tar holds: stored and source sizes, how many were downscaled.
    m = json.loads((out / "manifest.json").read_text())
    assert m["images"]["long_side"] == {"min": 12, "median": 12.0, "max": 12}
    assert m["images"]["source_long_side"]["max"] == 1200
    assert m["images"]["downscaled"] == 20 and m["images"]["at_source_resolution"] == 40
    assert "20 of 60 images were downscaled" in readme
    assert "| stored image long side min / median / max | 12 / 12 / 12 px |" in readme
    for name in PLOTS.values():
        assert f"]({name})" in readme
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert b"matplotlib" not in data  # no version stamp
        assert Image.open(out / name).size[0] > 100


def test_edge_splits_and_baselines(built: dict) -> None:
    """edge_splits.parquet holds every published edge once as a positive; its counts and
    the baselines are in the manifest and the card."""
    out = built["out"]
    m = json.loads((out / "manifest.json").read_text())
    es = pl.read_parquet(out / "edge_splits.parquet")
    assert es.columns == ["src", "dst", "split", "label", "query", "hard"]
    edges = pl.read_parquet(out / "edges.parquet")
    pos = es.filter(pl.col("label") == 1).select("src", "dst").sort("src", "dst")
    assert pos.rows() == edges.select("src", "dst").rows()
    counts = m["tasks"]["edge_splits"]
    assert counts == m["counts"]["edge_splits"]
    assert counts["train_edges"] + counts["val_edges"] + counts["test_edges"] == edges.height
    assert counts["negatives_per_positive"] > 0
    base = m["tasks"]["baselines"]
    assert set(base) == {"node_classification", "link_prediction", "retrieval"}
    assert set(base["node_classification"]["probe"]) == set(KINDS)
    assert base["link_prediction"]["test_edges"] == counts["test_edges"]
    readme = (out / "README.md").read_text()
    mrr = base["link_prediction"]["cosine"]["image"]["mrr"]
    assert f"| image | {mrr:.4f} |" in readme
    assert f"| test | {counts['test_edges']} | {counts['negatives_per_positive']} |" in readme
    assert "link_prediction_pairs" in readme


def test_reference_row_and_relation_distribution(tmp_path: Path) -> None:
    """A category of SLIP Table 1: its row, this build's and the ratio on the card and in the
    manifest; relations with a per-edge distribution are published with it."""
    work = tmp_path / "work"
    make_work(work, n=N, distribution=True)
    run_stage(CLASSES, work, ClassesParams(min_classes=2, min_items_per_class=5))
    ref = load_registry()["electronics"].reference
    out = assemble_category(
        work,
        tmp_path / "electronics",
        AssembleParams(category="electronics", reference=ref, shard_rows=1000),
    )
    m = json.loads((out / "manifest.json").read_text())
    edges = pl.read_parquet(out / "edges.parquet")
    assert m["reference"]["source"] == "SLIP Table 1" and m["reference"]["nodes_k"] == 98
    assert m["reference"]["build"]["nodes_k"] == N / 1000
    assert m["reference"]["ratio"]["nodes"] == float(f"{N / 98_000:.4g}")
    assert m["reference"]["ratio"]["edges"] == float(f"{edges.height / 2_015_000:.4g}")
    scores = pl.read_parquet(work / "clip" / "scores.parquet")
    want = float(f"{scores['clip_t_title'].mean() / 31.4:.4g}")
    assert m["reference"]["ratio"]["clip_t_title"] == want
    readme = (out / "README.md").read_text()
    assert "| SLIP Table 1 | 98k | 2,015k | 31.4 ± 3.7 | 29.3 ± 3.9 |" in readme
    assert f"| ratio (this build / Table 1) | {N / 98_000:.3g} |" in readme
    # The relation distribution, top first, between relation_id and relation_users.
    assert edges.columns == [
        "src",
        "dst",
        "weight",
        "relation_id",
        "relation_ids",
        "relation_shares",
        "relation_users",
    ]
    assert (edges["relation_ids"].list.first() == edges["relation_id"]).all()
    assert edges["relation_shares"].list.sum().to_list() == [1.0] * edges.height
    assert "`relation_ids` and `relation_shares` in `edges.parquet`" in readme


def test_degree_ccdf() -> None:
    x, share = degree_ccdf(np.array([5, 5, 6, 9]))
    assert x.tolist() == [5, 6, 9] and share.tolist() == [1.0, 0.5, 0.25]


def test_sample_subgraph_spans_several_classes() -> None:
    """A graph of two dense communities of 4 classes each, joined by light edges: the sample
    still reaches several classes and stays connected."""
    n = 40
    classes = np.arange(n) % 4
    pairs = {(i, j) for i in range(n) for j in range(i + 1, n) if classes[i] == classes[j]}
    pairs |= {(i, i + 1) for i in range(n - 1)}
    src, dst = np.array(sorted(pairs)).T
    w = np.where(classes[src] == classes[dst], 20, 3)
    nodes, edges = sample_subgraph(n, src, dst, w, seed=3, classes=classes)
    assert len(nodes) == 10 == len(set(nodes))
    assert len({int(classes[u]) for u in nodes}) >= 4
    # Connected: every node after the first joins an earlier one.
    g = {u: set() for u in nodes}
    for u, v, _ in edges:
        g[u].add(v)
        g[v].add(u)
    assert all(g[u] & set(nodes[:i]) for i, u in enumerate(nodes) if i)
    # Without classes: the heaviest edges alone, which stay inside one class here.
    plain, _ = sample_subgraph(n, src, dst, w, seed=3)
    assert len({int(classes[u]) for u in plain}) == 1


def test_sample_subgraph_is_connected_and_seeded() -> None:
    n = 30
    src = np.array([i for i in range(n) for s in (1, 2)]) % n
    dst = np.array([(i + s) % n for i in range(n) for s in (1, 2)])
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    w = np.arange(len(lo)) % 5 + 3
    nodes, edges = sample_subgraph(n, lo, hi, w, seed=1)
    assert len(nodes) == 10 == len(set(nodes))
    assert sample_subgraph(n, lo, hi, w, seed=1) == (nodes, edges)
    assert all(u in nodes and v in nodes for u, v, _ in edges)
    assert len(edges) >= 9  # breadth-first sample: connected


def test_replaces_existing_folder_and_failures_leave_nothing(built: dict, tmp_path: Path) -> None:
    out = tmp_path / "Electronics"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assemble_category(built["work"], out, AssembleParams(category="Electronics", shard_rows=1000))
    assert not (out / "stale.txt").exists()
    assert (out / "node_attributes" / "node_attributes_0.parquet").exists()
    assert not (out / "node_attributes" / "node_attributes_1.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Electronics"]

    # A work dir whose image is missing from the store: clear error, no folder, no temp dir.
    work = tmp_path / "broken"
    make_work(work, n=N, relations=False)
    run_stage(CLASSES, work, ClassesParams(min_classes=2, max_classes=5, min_items_per_class=5))
    victim = next((work / "image_store").rglob("*.jpg"))
    victim.unlink()
    with pytest.raises(UserError, match="missing from the store"):
        assemble_category(work, tmp_path / "pub" / "Broken", AssembleParams(category="Broken"))
    assert list((tmp_path / "pub").iterdir()) == []


def test_without_relations_and_stale_classes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    make_work(work, n=N, relations=False)
    with pytest.raises(UserError, match="classes stage"):
        assemble_category(work, tmp_path / "out", AssembleParams(category="X"))
    run_stage(CLASSES, work, ClassesParams(min_classes=2, max_classes=5, min_items_per_class=5))
    out = assemble_category(work, tmp_path / "out", AssembleParams(category="X"))
    edges = pl.read_parquet(out / "edges.parquet")
    assert edges.columns == ["src", "dst", "weight"]
    assert not (out / "relations.json").exists()
    assert "relation_id" not in read_dgl_graph(out / "dgl_graph.dgl")["edata"]
    # classes.parquet from another graph: refused.
    pl.DataFrame({"asin": ["B000000000"], "class": [0], "class_name": ["Audio"]}).write_parquet(
        work / "classes.parquet"
    )
    with pytest.raises(UserError, match="stale"):
        assemble_category(work, tmp_path / "out2", AssembleParams(category="X"))


@pytest.mark.parametrize(
    "bad",
    [
        {"edge_ratios": (0.8, 0.2)},
        {"negatives": 0},
        {"hard_fraction": 1.5},
        {"retrieval_text": "reviews"},
        {"probe_c": (0.0,)},
        {"shard_rows": 0},
    ],
)
def test_bad_task_settings_fail_before_any_work(bad: dict) -> None:
    with pytest.raises(UserError):
        AssembleParams(category="X", **bad)


def test_image_store_corruption_is_detected(tmp_path: Path) -> None:
    work = tmp_path / "work"
    make_work(work, n=N, relations=False)
    run_stage(CLASSES, work, ClassesParams(min_classes=2, max_classes=5, min_items_per_class=5))
    victim = next((work / "image_store").rglob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:-10])
    assert hashlib.sha256(victim.read_bytes()).hexdigest() != victim.stem
    with pytest.raises(UserError, match="corrupt"):
        assemble_category(work, tmp_path / "out", AssembleParams(category="X"))


@pytest.mark.dgl
def test_real_dgl_loads_the_assembled_folder(built: dict, tmp_path: Path) -> None:
    """The ACMMG card's snippet, verbatim, in the pinned real-DGL consumer environment
    (tools/dgl_consumer_env.sh builds it on first use, then it is cached)."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = subprocess.run(
        ["bash", str(root / "tools" / "dgl_consumer_env.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert env.returncode == 0, env.stderr[-4000:]
    python = env.stdout.strip().splitlines()[-1]
    folder = tmp_path / "Electronics"
    shutil.copytree(built["out"], folder)  # the snippet extracts images.tar beside it
    r = subprocess.run(
        [python, str(root / "tools" / "dgl_consumer_check.py"), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"DGLBACKEND": "pytorch", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["nodes"] == N
    assert summary["edges"] == len(built["info"]["edges"])
    assert (folder / "images" / f"{sorted(built['info']['asins'])[0]}.jpg").exists()
