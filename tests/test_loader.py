"""``acmmg.load_category`` and ``Category`` in this environment (the adapters that need
torch_geometric, dgl or datasets run in their own environments: tests/test_loader_consumers.py)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import acmmg
from acmmg.category import Category
from acmmg.download import PARTIAL_MANIFEST
from acmmg.errors import UserError
from pipeline.cli import main as cli_main
from pipeline.publish.targets import publish_folder
from tests.httpserver import FaultyServer
from tests.publish_fixtures import build_category_folder

SLUG = "demo"
ROOT = Path(__file__).resolve().parents[1]
# What a researcher's `import acmmg` + load must not pull in.
HEAVY = ("torch", "prefect", "dask", "open_clip", "duckdb", "polars", "pipeline", "PIL")


@pytest.fixture
def target(tmp_path):
    folder = tmp_path / "build" / SLUG
    built = build_category_folder(folder, n=30, seed=4, shards=3)
    target = tmp_path / "target"
    version = publish_folder(folder, SLUG, str(target))
    return {"target": target, "folder": folder, "version": version, **built}


def check_category(cat: Category, built: dict) -> None:
    n = built["num_nodes"]
    assert cat.num_nodes == n and cat.nodes.num_rows == n
    assert cat.nodes["asin"].to_pylist() == built["asins"]
    assert cat.nodes["node_id"].to_pylist() == list(range(n))  # .to_pandas(): consumer venv
    assert np.array_equal(cat.labels, built["classes"])
    src, dst, w = cat.edge_arrays()
    assert np.array_equal(np.stack([src, dst], 1), built["pairs"]) and w.dtype == np.float32
    s2, d2, w2 = cat.directed_edges()
    assert np.array_equal(s2, built["src"]) and np.array_equal(d2, built["dst"])
    assert np.array_equal(w2, built["edata"]["weight"])
    for name in ("train", "val", "test"):
        assert np.array_equal(cat.masks[name], built["split"] == name)
    assert cat.embedding_names == ["combined", "description", "image", "title"]
    emb = cat.embeddings("combined")
    assert isinstance(emb, np.memmap) and not emb.flags.writeable
    assert np.array_equal(emb, built["embeddings"]["combined"])
    assert cat.classes == {0: "Speakers", 1: "Headphones", 2: "Cables"}
    assert cat.class_names == ["Speakers", "Headphones", "Cables"]
    assert cat.relations == built["relations"]
    assert cat.version == built["manifest"]["version"]


def test_load_from_a_local_target_downloads_verified_into_the_cache(target, tmp_path):
    cat = acmmg.load_category(target["target"] / SLUG, cache_dir=tmp_path / "cache")
    assert cat.complete and cat.root.parent.parent == tmp_path / "cache"
    assert (cat.root / "manifest.json").is_file() and (cat.root / "images").is_dir()
    check_category(cat, target)
    asin = target["asins"][3]
    img = cat.image(asin)
    assert img.size == (16, 16) and img.convert("RGB").getpixel((8, 8))[0] > 0
    assert cat.image_bytes(asin) == (cat.root / "images" / f"{asin}.jpg").read_bytes()
    t = cat.embeddings("title", tensor=True)
    assert t.dtype.is_floating_point and tuple(t.shape) == (30, 8)
    # Loading again finds everything present and intact.
    again = acmmg.load_category(str(target["target"] / SLUG), cache_dir=tmp_path / "cache")
    assert again.root == cat.root


def test_a_category_folder_is_read_in_place_images_from_inside_the_tar(target):
    vdir = target["target"] / SLUG / "versions" / target["version"]
    cat = acmmg.load_category(vdir, verify=True)
    assert cat.root == vdir and not (vdir / "images").exists()
    check_category(cat, target)
    asin = target["asins"][7]
    assert cat.image(asin).size == (16, 16)  # read from images.tar, nothing extracted
    with pytest.raises(KeyError, match="no image"):
        cat.image_bytes("nope")
    assert "demo" in repr(cat) and target["version"] in repr(cat)
    with pytest.raises(UserError, match="apply to downloads"):
        acmmg.load_category(vdir, include=["*.json"])
    for bad in ("hf://datasets/me/acmmg", "hf:me/acmmg"):
        with pytest.raises(UserError, match="name the category too"):
            acmmg.load_category(bad)


def test_http_source_and_verification(target, tmp_path):
    with FaultyServer(target["target"]) as server:
        cat = acmmg.load_category(f"{server.url}/{SLUG}", cache_dir=tmp_path / "c")
        check_category(cat, target)
        (cat.root / "edges.parquet").write_bytes(b"tampered")
        with pytest.raises(UserError, match="differs from the manifest"):
            acmmg.load_category(cat.root, verify=True)
        again = acmmg.load_category(f"{server.url}/{SLUG}", cache_dir=tmp_path / "c")
        assert again.edges.num_rows == len(target["pairs"])  # re-fetched, verified


def test_partial_download_is_verified_and_a_full_one_completes_it(target, tmp_path):
    with FaultyServer(target["target"]) as server:
        cat = acmmg.load_category(
            f"{server.url}/{SLUG}",
            include=["embeddings/*.npy", "node_attributes", "*.parquet", "*.json"],
            exclude="images.tar",
            cache_dir=tmp_path / "c",
        )
        assert not cat.complete and "partial" in repr(cat)
        assert not (cat.root / "manifest.json").exists()
        assert (cat.root / PARTIAL_MANIFEST).is_file()
        assert not (cat.root / "images.tar").exists() and not (cat.root / "dgl_graph.dgl").exists()
        assert not list((cat.root / "embeddings").glob("*.pt"))
        check_category(cat, target)
        with pytest.raises(UserError, match="partial download"):
            cat.image(target["asins"][0])

        # A full download into the same folder sees it is incomplete and fetches the rest only.
        server.requests.clear()
        rc = cli_main(
            ["download", SLUG, "--from", server.url, "--to", str(cat.root.parent), "--no-progress"]
        )
        assert rc == 0
        fetched = sorted(r[1].split(f"{target['version']}/", 1)[1] for r in server.data_requests())
        assert fetched == sorted(
            ["dgl_graph.dgl", "images.tar", *(f"embeddings/{k}_embeds.pt" for k in ("combined",
             "description", "image", "title"))]
        )  # fmt: skip
        assert (cat.root / "manifest.json").is_file() and not (cat.root / PARTIAL_MANIFEST).exists()
        assert Category(cat.root).complete


def test_cli_partial_download_and_an_include_that_matches_nothing(target, tmp_path, capsys):
    dest = tmp_path / "dl"
    args = ["download", SLUG, "--from", str(target["target"]), "--to", str(dest)]
    assert cli_main([*args, "--include", "embeddings/*", "--exclude", "*.pt"]) == 0
    got = sorted(p.relative_to(dest / SLUG).as_posix() for p in (dest / SLUG).rglob("*.npy"))
    assert got == [
        f"embeddings/{k}_embeds.npy" for k in ("combined", "description", "image", "title")
    ]
    assert not (dest / SLUG / "manifest.json").exists()
    capsys.readouterr()
    assert cli_main([*args, "--include", "embedings/*"]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_import_and_load_stay_light(target, tmp_path):
    """`import acmmg` and reading tables / numpy embeddings import none of the heavy stack."""
    vdir = target["target"] / SLUG / "versions" / target["version"]
    code = (
        "import sys, json, acmmg\n"
        f"cat = acmmg.load_category({str(vdir)!r})\n"
        "cat.nodes; cat.edges; cat.splits; cat.masks; cat.classes; cat.embeddings('image')\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'n': cat.num_nodes}))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == {"heavy": [], "n": 30}


def test_lazy_evaluator_export():
    assert "Evaluator" in dir(acmmg)
    try:
        module = importlib.import_module("acmmg.evaluator")  # added by the tasks work
    except ImportError:
        with pytest.raises(ImportError):
            acmmg.Evaluator  # noqa: B018
    else:
        assert acmmg.Evaluator is module.Evaluator
    with pytest.raises(AttributeError):
        acmmg.nope  # noqa: B018
