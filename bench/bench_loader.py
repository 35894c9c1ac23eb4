"""Light loader benchmark: import time and time to first data of ``acmmg.load_category``,
side by side with the training module's loader (``pipeline.training.data``), in one run.

Every measurement is a fresh interpreter (``python -X importtime`` is not used: wall time of
the import statement as a user sees it), alternating product and baseline ``--repeat`` times;
the table gives medians and the ratio of the medians.

- import: ``from acmmg import load_category`` vs ``from pipeline.training.data import
  load_category``;
- first data: that import, then loading a published category folder and reading the node
  table and the combined embeddings (acmmg: arrow + mmap'd .npy; baseline: its dataclass and
  ``load_embeddings``). The folder is the demo's if given (``--folder``), else a generated one.

    python bench/bench_loader.py [--folder data/published/demo/versions/V] [--repeat 7]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = {
    ("acmmg", "import"): "from acmmg import load_category",
    ("baseline", "import"): "from pipeline.training.data import load_category",
    ("acmmg", "first data"): (
        "from acmmg import load_category\n"
        "c = load_category(FOLDER); c.nodes; x = c.embeddings('combined'); float(x[0, 0])"
    ),
    ("baseline", "first data"): (
        "from pipeline.training.data import load_category, load_embeddings\n"
        "c = load_category(FOLDER); x = load_embeddings(FOLDER, 'combined'); float(x[0, 0])"
    ),
}
HEAVY = ("torch", "prefect", "dask", "open_clip", "duckdb", "polars")


def run(code: str, folder: Path) -> tuple[float, list[str]]:
    script = (
        "import time, sys, json\n"
        "t0 = time.perf_counter()\n"
        + code.replace("FOLDER", repr(str(folder)))
        + "\nt = time.perf_counter() - t0\n"
        f"print(json.dumps([t, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    t, heavy = json.loads(r.stdout.strip().splitlines()[-1])
    return t, heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, help="a published category folder (default: generated)")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            sys.path.insert(0, str(ROOT))
            from tests.publish_fixtures import build_category_folder

            folder = Path(tmp) / "demo"
            build_category_folder(folder, n=400, dim=512)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in CODE}
        heavy: dict[tuple[str, str], list[str]] = {}
        for _ in range(args.repeat):
            for key, code in CODE.items():
                t, h = run(code, folder)
                times[key].append(t)
                heavy[key] = h
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"{when}, Python {platform.python_version()}, median of {args.repeat}, {folder}")
    print("| measure | loader | wall s | ratio | heavy modules imported |")
    print("|---|---|---:|---:|---|")
    for what in ("import", "first data"):
        base = statistics.median(times[("baseline", what)])
        for who, label in (
            ("acmmg", "**acmmg.load_category**"),
            ("baseline", "pipeline.training.data"),
        ):
            t = statistics.median(times[(who, what)])
            ratio = f"**{t / base:.3f}x**" if who == "acmmg" else "1.00x"
            print(
                f"| {what} | {label} | {t:.3f} | {ratio} | {', '.join(heavy[(who, what)]) or '-'} |"
            )


if __name__ == "__main__":
    main()
