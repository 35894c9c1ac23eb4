"""Our ``dgl_graph.dgl`` loads in real DGL: the ACMMG card's snippet runs unchanged on a folder.

The product cannot import dgl (pipeline/publish/dgl_format.py says why), so this test builds
the pinned consumer environment (tools/dgl_consumer_env.sh: dgl 2.1.0, torch 2.2.1; cached at
$ACMMG_DGL_VENV, default ~/.cache/acmmg/dgl-consumer-venv; the first build takes ~3 min) and
runs tools/dgl_consumer_check.py there. Not skipped when the environment is missing: it is
built.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.classes import ClassesParams
from pipeline.publish.assemble import AssembleParams
from pipeline.publish.dgl_format import HEADER_SIZE, read_dgl_graph, write_dgl_graph
from tests.publish_fixtures import build_category_folder

pytestmark = pytest.mark.dgl

ROOT = Path(__file__).resolve().parents[1]
ENV_SCRIPT = ROOT / "tools" / "dgl_consumer_env.sh"
CHECK = ROOT / "tools" / "dgl_consumer_check.py"


@pytest.fixture(scope="module")
def consumer_python() -> str:
    r = subprocess.run(
        ["bash", str(ENV_SCRIPT)], capture_output=True, text=True, timeout=1500, check=False
    )
    assert r.returncode == 0, f"building the DGL consumer env failed:\n{r.stderr[-4000:]}"
    python = r.stdout.strip().splitlines()[-1]
    assert Path(python).exists(), python
    return python


def run_check(python: str, folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, str(CHECK), str(folder), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"DGLBACKEND": "pytorch", "PATH": "/usr/bin:/bin", "HOME": str(folder.parent)},
    )


def test_card_snippet_and_graph_match_the_folder(tmp_path, consumer_python):
    folder = tmp_path / "demo"
    built = build_category_folder(folder, n=60, seed=3, shards=3)
    resaved = tmp_path / "resaved"
    r = run_check(consumer_python, folder, "--resave", str(resaved))
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["dgl"] == "2.1.0"
    assert summary["nodes"] == 60 and summary["directed_edges"] == 2 * summary["edges"]
    assert summary["ndata"] == ["label", "test_mask", "train_mask", "val_mask"]
    assert summary["edata"] == ["relation_id", "weight"]
    assert (folder / "images" / f"{built['asins'][0]}.jpg").exists()  # the snippet extracted

    # Files real DGL wrote (COO, CSR-only, CSC-only) read back with our reader as written.
    for name in ("default", "csr", "csc"):
        g = read_dgl_graph(resaved / f"{name}.dgl")
        assert g["num_nodes"] == built["num_nodes"]
        assert np.array_equal(g["src"], built["src"]) and np.array_equal(g["dst"], built["dst"])
        for k, v in built["ndata"].items():
            assert np.array_equal(g["ndata"][k], v.astype(g["ndata"][k].dtype)), (name, k)
        for k, v in built["edata"].items():
            assert g["edata"][k].dtype == v.dtype and np.array_equal(g["edata"][k], v), (name, k)

    # Byte for byte: our writer, given real DGL's feature order, writes what real DGL wrote.
    real = read_dgl_graph(resaved / "default.dgl")
    ours = tmp_path / "ours.dgl"
    write_dgl_graph(ours, real["num_nodes"], real["src"], real["dst"], real["ndata"], real["edata"])
    assert ours.read_bytes()[HEADER_SIZE:] == (resaved / "default.dgl").read_bytes()[HEADER_SIZE:]


def test_check_catches_a_graph_that_disagrees(tmp_path, consumer_python):
    # A label that differs from node_attributes' class must fail the check: it checks.
    folder = tmp_path / "bad"
    build_category_folder(folder, n=30, seed=4, label_override={5: 99})
    r = run_check(consumer_python, folder)
    assert r.returncode != 0
    assert "ndata['label'] != class" in r.stderr


def test_check_catches_a_graph_missing_reverse_edges(tmp_path, consumer_python):
    folder = tmp_path / "oneway"
    built = build_category_folder(folder, n=30, seed=5)
    e = len(built["src"]) // 2
    write_dgl_graph(
        folder / "dgl_graph.dgl",
        built["num_nodes"],
        built["src"][:e],
        built["dst"][:e],
        built["ndata"],
        {k: v[:e] for k, v in built["edata"].items()},
    )
    (folder / "manifest.json").unlink()  # the checksum would catch it first
    r = run_check(consumer_python, folder)
    assert r.returncode != 0
    assert "edges" in r.stderr


def test_assembled_published_downloaded_folder_loads_in_dgl(tmp_path, consumer_python):
    """The whole chain: assemble (product code) -> publish -> download over HTTP -> real DGL."""
    from pipeline.classes import choose_classes
    from pipeline.download import download_category
    from pipeline.publish.assemble import assemble_category
    from pipeline.publish.targets import publish_folder
    from tests.assemble_fixtures import make_work
    from tests.httpserver import FaultyServer

    work = tmp_path / "work"
    make_work(work, n=48, seed=2)
    choose_classes(work, ClassesParams(min_classes=2, min_items_per_class=5))
    folder = assemble_category(
        work, work / "publish" / "Electronics", AssembleParams(category="Electronics")
    )
    version = publish_folder(folder, "Electronics", str(tmp_path / "target"))
    server = FaultyServer(tmp_path / "target").start()
    try:
        out = download_category("Electronics", server.url, tmp_path / "dl")
    finally:
        server.close()
    shutil.rmtree(out / "images")  # let the card's snippet extract images.tar itself
    r = run_check(consumer_python, out)
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == version
    assert summary["nodes"] == manifest["counts"]["nodes"] == 48
    assert summary["edges"] == manifest["counts"]["edges"]
    assert {"label", "train_mask", "val_mask", "test_mask"} <= set(summary["ndata"])
    assert "weight" in summary["edata"]


def test_check_refuses_embeddings_that_run_code(tmp_path, consumer_python):
    """The card's snippet loads embeddings with weights_only=True: a pickle that would run
    code fails the check, and the code never runs."""
    folder = tmp_path / "hostile"
    build_category_folder(folder, n=30, seed=6)
    marker = tmp_path / "PWNED"
    payload = (
        "import os, torch\n"
        "class P:\n"
        "    def __reduce__(self):\n"
        f"        return (os.system, ('touch {marker}',))\n"
        f"torch.save(P(), {str(folder / 'embeddings' / 'image_embeds.pt')!r})\n"
    )
    subprocess.run([consumer_python, "-c", payload], check=True, timeout=120)
    (folder / "manifest.json").unlink()  # the checksum would catch it first
    r = run_check(consumer_python, folder)
    assert r.returncode != 0
    assert "Weights only load failed" in r.stderr or "UnpicklingError" in r.stderr
    assert not marker.exists()
