"""The light package in fresh environments that have only it and one consumer library:
HF ``datasets`` (no torch at all), and PyG + DGL (on the DGL consumer environment).

The environments are built once and cached (tests/consumer_envs.py: about 25 s for the light
one; the graph one adds torch_geometric to tools/dgl_consumer_env.sh's, ~6 s after that).
Not skipped when missing: they are built.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.publish.targets import publish_folder
from tests import consumer_envs
from tests.publish_fixtures import build_category_folder

SLUG = "demo"
CHECK = Path(__file__).with_name("consumer_check.py")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return consumer_envs.build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def published(tmp_path):
    folder = tmp_path / "build" / SLUG
    built = build_category_folder(folder, n=36, seed=5, shards=2)
    target = tmp_path / "target"
    publish_folder(folder, SLUG, str(target))
    expected = tmp_path / "expected.npz"
    np.savez(
        expected,
        asins=np.array(built["asins"]),
        classes=built["classes"],
        split=built["split"],
        pairs=built["pairs"],
        weight=built["weight"],
        combined=built["embeddings"]["combined"],
    )
    return target / SLUG, expected


def run_check(python: str, mode: str, source: Path, expected: Path, tmp: Path) -> dict:
    r = subprocess.run(
        [python, str(CHECK), mode, str(source), str(tmp / "cache"), str(expected)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp,  # not the checkout: the installed wheel's acmmg is imported
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "DGLBACKEND": "pytorch"},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and str(ROOT) not in summary["acmmg"]
    return summary


def test_hf_adapter_in_an_env_with_only_the_light_package_and_datasets(wheel, published, tmp_path):
    python = consumer_envs.light_python(wheel)
    r = subprocess.run(
        [python, "-c", "import importlib.util as u; print([m for m in ('torch', 'pipeline', "
         "'prefect', 'duckdb', 'open_clip', 'dask') if u.find_spec(m)])"],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert r.stdout.strip() == "[]"  # none of them is even installed
    summary = run_check(python, "hf", *published, tmp_path)
    assert summary["hf_rows"] == {"train": 12, "validation": 12, "test": 12}
    assert summary["torch_loaded"] is False


@pytest.mark.dgl
def test_pyg_and_dgl_adapters_in_the_dgl_consumer_env(wheel, published, tmp_path):
    from tests.test_dgl_consumer import ENV_SCRIPT

    r = subprocess.run(
        ["bash", str(ENV_SCRIPT)], capture_output=True, text=True, timeout=1500, check=False
    )
    assert r.returncode == 0, f"building the DGL consumer env failed:\n{r.stderr[-4000:]}"
    python = consumer_envs.graph_python(wheel, r.stdout.strip().splitlines()[-1])
    summary = run_check(python, "graph", *published, tmp_path)
    assert summary["pyg_edges"] == summary["dgl_edges"] > 0
