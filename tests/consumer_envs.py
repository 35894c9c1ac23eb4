"""Fresh virtual environments holding only the light package (``acmmg-data``) and one
consumer library, as a researcher would have them; cached between runs.

- ``light_python()``: Python + ``acmmg-data[hf]`` (numpy, pyarrow, requests, fsspec, filelock,
  datasets, Pillow) and nothing else: no torch, no pipeline;
- ``graph_python()``: ``acmmg-data[pyg,dgl]`` + torch_geometric, layered on the DGL consumer
  environment (tools/dgl_consumer_env.sh: real dgl 2.1.0 + torch 2.2.1) through a ``.pth``
  file, so torch is not installed a second time (about 6 s on top of it).

Each environment is built once with the wheel's own dependency declarations (``pip install
WHEEL[extras]``), cached under ``$ACMMG_CONSUMER_CACHE`` (default ``~/.cache/acmmg``) keyed by
the hash of acmmg-data/pyproject.toml, tools/loader-consumer-constraints.txt and the extras;
later runs only reinstall the freshly built wheel (``--no-deps``), so the code under test is
always this checkout's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "tools" / "loader-consumer-constraints.txt"
PYPROJECT = ROOT / "acmmg-data" / "pyproject.toml"
STALE_S = 7 * 24 * 3600


def cache_root() -> Path:
    return Path(os.environ.get("ACMMG_CONSUMER_CACHE", Path.home() / ".cache" / "acmmg"))


def _run(cmd: list[str], timeout: int = 900) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
        )
    return r.stdout


def build_wheel(out: Path) -> Path:
    """The acmmg-data wheel of this checkout, built from a clean copy (no stale build/)."""
    src = out / "src"
    shutil.copytree(
        ROOT / "acmmg-data",
        src / "acmmg-data",
        ignore=shutil.ignore_patterns("build", "*.egg-info"),
    )
    shutil.copytree(ROOT / "acmmg", src / "acmmg", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(out), str(src / "acmmg-data")])  # fmt: skip
    (wheel,) = out.glob("acmmg_data-*.whl")
    return wheel


def _venv(name: str, base_python: str, extras: str, wheel: Path, layer: Path | None) -> str:
    from filelock import FileLock

    key = hashlib.sha256()
    for part in (
        PYPROJECT.read_bytes(),
        CONSTRAINTS.read_bytes(),
        extras.encode(),
        str(layer).encode(),
    ):
        key.update(part)
    venv = cache_root() / f"{name}-{key.hexdigest()[:12]}"
    python = venv / "bin" / "python"
    marker = venv / ".acmmg-ready"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-input"]
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{venv}.lock"):
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)  # a half-built one is thrown away
            _run([base_python, "-m", "venv", str(venv)])
            if layer is not None:
                site = _run([str(python), "-c", "import site; print(site.getsitepackages()[0])"])
                (Path(site.strip()) / "zz_acmmg_layer.pth").write_text(f"{layer}\n")
            _run([*pip, "-c", str(CONSTRAINTS), f"{wheel}[{extras}]"])
            marker.write_text(key.hexdigest())
        _run([*pip, "--no-deps", "--force-reinstall", str(wheel)])
        marker.touch()  # last used: environments of other keys unused for a week are removed
    for other in venv.parent.glob(f"{name}-*"):
        stamp = other / ".acmmg-ready"
        if other != venv and other.is_dir() and stamp.exists():
            if time.time() - stamp.stat().st_mtime > STALE_S:
                shutil.rmtree(other, ignore_errors=True)
    return str(python)


def light_python(wheel: Path) -> str:
    base = getattr(sys, "_base_executable", sys.executable)
    return _venv("light-consumer-venv", base, "hf", wheel, None)


def graph_python(wheel: Path, dgl_python: str) -> str:
    site = _run([dgl_python, "-c", "import site; print(site.getsitepackages()[0])"]).strip()
    return _venv("graph-consumer-venv", dgl_python, "pyg,dgl", wheel, Path(site))
