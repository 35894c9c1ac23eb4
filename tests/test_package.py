"""The package as a user installs it: a wheel built from the repository, installed (not
editable) into a fresh virtual environment, holds every file the code reads (SQL, the
category registry, model configs) and runs ``acmmg graph`` on the real 2018 sample from
another working directory.

The fresh environment reuses this one's installed dependencies through a path entry in a
``.pth`` file (not as a site directory, so this environment's editable install of the
repository is not activated there), and the test checks that ``pipeline`` is imported from
the wheel's copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import pipeline

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "flows", "acmmg")
SHIPPED = (".py", ".sql", ".toml", ".json")  # what the code imports or reads at run time


def _tracked(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=root, capture_output=True, text=True, check=True
    )
    return [p for p in out.stdout.splitlines() if p.endswith(SHIPPED)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"
    # Build from a copy of what git tracks: nothing left over in the checkout can help.
    for rel in _tracked(REPO) + ["pyproject.toml", "README.md"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
        env=env,
        check=True,
        timeout=600,
    )
    (wheel,) = (tmp / "dist").glob("acmmg_pipeline-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index"]
        + [str(wheel)],
        env=env,
        check=True,
        timeout=600,
    )
    return venv / "bin"


def _run(bindir: Path, *cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_holds_every_file_the_code_reads(installed, tmp_path):
    (wheel,) = list((installed.parent.parent / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [rel for rel in _tracked(REPO) if rel not in names]
    assert not missing, missing
    where = _run(
        installed,
        "python",
        "-c",
        "import sys, pipeline, pipeline.sql, pipeline.clip, pipeline.categories as c; "
        "print(pipeline.__file__); print(pipeline.sql.SQL_DIR); print(pipeline.clip.MODEL_CONFIG_DIR);"
        "print(len(c.load_registry())); "
        "print(any('editable' in m for m in sys.modules))",
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    module, sql_dir, configs, n_categories, editable = where.stdout.split()
    venv = str(installed.parent)
    assert module.startswith(venv) and not module.startswith(str(REPO)), module
    assert sql_dir.startswith(venv) and configs.startswith(venv)
    assert int(n_categories) >= 17 and editable == "False"


def test_acmmg_version_and_graph_on_the_real_sample(installed, tmp_path, raw_dir):
    version = _run(installed, "acmmg", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"acmmg {pipeline.__version__}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sample = raw_dir / "ooethanoo_2018_5core" / "All_Beauty_5.json"
    r = _run(installed, "acmmg", "graph", "--reviews", str(sample), "--out", "out", cwd=elsewhere)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((elsewhere / "out" / "stats.json").read_text())
    # The README's table for this sample (default thresholds: >= 3 co-buyers, 5-core).
    assert stats["reviews_read"] == 5269 and stats["duplicates_dropped"] == 1044
    assert (stats["nodes"], stats["edges"]) == (14, 60)
    assert (elsewhere / "out" / "edges.parquet").is_file()
