"""bench/bench_flow.py without a whole build (one takes minutes): its process-tree sampler on a
real forked tree, the attribution of samples to the flow's recorded stage boundaries, the
growth exponents and the README section it writes."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bf():
    spec = importlib.util.spec_from_file_location("bench_flow", ROOT / "bench" / "bench_flow.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def test_exponent(bf) -> None:
    assert bf.exponent(0.01, 10.0, 0.1, 100.0) == pytest.approx(1.0)
    assert bf.exponent(0.001, 4.0, 0.01, 4.0) == pytest.approx(0.0)
    assert bf.exponent(1, 1.0, 2, 4.0) == pytest.approx(2.0)
    assert bf.exponent(0.01, 0.0, 0.1, 3.0) is None  # a stage that took no time
    assert bf.exponent(0.1, 1.0, 0.1, 2.0) is None
    assert bf.affine(0.01, 10.0, 0.1, 19.0) == pytest.approx(109.0)  # 9 fixed + 100 per scale


def test_monitor_sees_the_whole_tree(bf, tmp_path) -> None:
    # A parent that starts a child holding ~80 MB and burning CPU: both count.
    # A busy loop on CPU time, not wall time: the cores are shared.
    child = (
        "import time; b = b'x' * (80 << 20)\nwhile time.process_time() < 1.2: pass\ntime.sleep(0.3)"
    )
    parent = textwrap.dedent(f"""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {child!r}], check=True)
    """)
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "part").write_bytes(b"x" * 3_000_000)
    r = bf.run_measured(
        [sys.executable, "-c", parent], tmp_path, tmp_path / "log", [spill], interval=0.05
    )
    assert r["wall_s"] >= 1.5
    peak = max(s["rss"] for s in r["samples"])
    assert peak >= 80e6, peak
    assert max(s["pss"] for s in r["samples"]) >= 60e6  # smaps_rollup on this kernel
    assert r["samples"][-1]["cpu"] >= 0.8  # the child's busy loop, seen before it ended
    assert r["cpu_s"] >= r["samples"][-1]["cpu"] * 0.8
    assert max(s["temp"] for s in r["samples"]) == 3_000_000


def test_a_failed_command_is_one_message(bf, tmp_path) -> None:
    with pytest.raises(SystemExit, match="failed"):
        bf.run_measured(
            [sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path, tmp_path / "l", [], 0.05
        )


def _samples(t0: float, n: int, dt: float, rss, cpu_per_s: float) -> list[dict]:
    return [
        {"t": t0 + i * dt, "rss": rss(t0 + i * dt), "pss": rss(t0 + i * dt) / 2,
         "cpu": cpu_per_s * i * dt, "temp": 1e6 if 3 <= i * dt <= 4 else 0.0}
        for i in range(n)
    ]  # fmt: skip


def test_stage_rows_attribute_by_the_recorded_boundaries(bf) -> None:
    t0 = 1000.0
    # The tree peaks at 5 GB only inside the second stage (t0 + 3 .. t0 + 6).
    samples = _samples(t0, 51, 0.2, lambda t: 5e9 if t0 + 3.5 <= t <= t0 + 4 else 1e9, 2.0)
    timings = [
        {"stage": "ingest", "start": t0 + 1, "seconds": 1.9},
        {"stage": "graph", "start": t0 + 3, "seconds": 3.0},
    ]
    rows = {r["stage"]: r for r in bf.stage_rows(samples, timings, t0, t0 + 10)}
    assert list(rows) == ["start-up", "ingest", "graph", "shut-down"]
    assert rows["start-up"]["span_s"] == pytest.approx(1.0)
    assert rows["ingest"]["wall_s"] == pytest.approx(1.9)  # the flow's own record
    assert rows["ingest"]["span_s"] == pytest.approx(1.9)
    assert rows["graph"]["span_s"] == pytest.approx(3.1)  # the hand-over gap goes to graph
    assert rows["ingest"]["cpu_s"] == pytest.approx(3.8)  # 2 CPU s per s, interpolated
    assert rows["graph"]["cpu_s"] == pytest.approx(6.2)
    assert rows["graph"]["peak_rss_gb"] == pytest.approx(5.0)
    assert rows["graph"]["peak_pss_gb"] == pytest.approx(2.5)
    assert rows["ingest"]["peak_rss_gb"] == pytest.approx(1.0)
    assert rows["graph"]["peak_temp_mb"] == pytest.approx(1.0)
    assert rows["shut-down"]["span_s"] == pytest.approx(4.0)
    total = sum(r["cpu_s"] for r in rows.values())
    assert total == pytest.approx(samples[-1]["cpu"])  # every CPU second goes to one row


def _result(scale: float, graph_s: float, ingest_s: float) -> dict:
    rows = []
    for name, wall in (
        ("start-up", 20.0), ("ingest", ingest_s), ("graph", graph_s), ("images", 5.0),
        ("embed", 9.0), ("shut-down", 2.0),
    ):  # fmt: skip
        rows.append(
            {"stage": name, "wall_s": wall, "span_s": wall, "cpu_s": wall * 0.9,
             "peak_rss_gb": 1.0 + scale, "peak_pss_gb": 0.5 + scale, "peak_temp_mb": 0.0,
             "output_mb": None if name in ("start-up", "shut-down") else 1.0}
        )  # fmt: skip
    wall = sum(r["wall_s"] for r in rows)
    return {
        "scale": scale, "date": "2026-12-02 14:00 UTC", "load": [1.0, 2.0], "interval_s": 0.2,
        "sample": {"wall_s": 3.0, "cpu_s": 2.5, "peak_rss_gb": 0.2, "reviews": 1000,
                   "users": 400, "items": 50, "images": 20, "gz_mb": 0.5},
        "flow": {"wall_s": wall, "cpu_s": wall * 0.9, "peak_rss_gb": 1.5 + scale,
                 "peak_pss_gb": 1.0 + scale, "peak_temp_mb": 0.0, "work_mb": 3.0,
                 "published_mb": 1.0, "samples": 10},
        "counts": {"reviews_read": 1000, "pair_instances": 5000, "nodes": 90, "edges": 700},
        "rows": rows,
    }  # fmt: skip


def test_render_growth_and_targets(bf) -> None:
    # graph x100 from 0.001 to 0.01 (exponent 2: flagged), ingest x10 (exponent 1).
    results = [_result(0.01, 100.0, 30.0), _result(0.001, 1.0, 3.0)]
    g = {(x["stage"]): x for x in bf.growth(sorted(results, key=lambda r: r["scale"]))}
    assert g["graph"]["wall"] == pytest.approx(2.0)
    assert g["ingest"]["wall"] == pytest.approx(1.0)
    assert g["start-up"]["wall"] == pytest.approx(0.0)
    assert math.isclose(g["whole flow"]["wall"], bf.exponent(0.001, 40.0, 0.01, 166.0))
    text = bf.render(results)
    assert text.startswith(bf.BEGIN) and text.rstrip().endswith(bf.END)
    assert text.index("Scale **0.001**") < text.index("Scale **0.01**")  # sorted by scale
    assert "\n| graph | 1.0 | 0.9 | 1.00 | 0.50 | 0.0 | 1.0 |\n" in text  # rows stay whole
    assert "| graph | **2.00** | **2.00** |" in text  # wall and CPU exponents over 1.1
    flat = " ".join(text.split())  # prose is wrapped at 95 columns
    assert "Scale **0.1**: not run" in flat and "--scales 1 --write-readme" in flat
    assert flat.count("**not measured** (scale 1 not run)") == 3
    assert "exceeded at the measured scales by graph 2.00 (0.001→0.01)" in flat
    # flow less images and embed at 0.01: 20 + 30 + 100 + 2 = 152 s; at 0.001: 26 s.
    assert "2.5 min for the flow less the images and embed stages" in flat
    assert f"~{bf.affine(0.001, 26 / 60, 0.01, 152 / 60):,.0f} min at scale 1" in flat
    assert all(len(line) <= 95 for line in text.splitlines() if not line.startswith(("|", "<")))
    # one scale only: no exponent, a linear extrapolation
    one = bf.render([_result(0.01, 10.0, 3.0)])
    assert "(one scale measured: no growth exponent)" in one
    assert "**not measured** (one scale)" in " ".join(one.split())


def test_readme_section_is_replaced_and_the_rest_kept(bf) -> None:
    readme = "# Benchmarks\n\n## Graph build\n\ntext\n"
    first = bf.replace_section(readme, bf.render([_result(0.001, 1.0, 3.0)]))
    assert first.startswith(readme.rstrip("\n")) and bf.BEGIN in first
    again = bf.replace_section(
        first + "\n## Later section\n\nkept\n", bf.render([_result(0.01, 9.0, 3.0)])
    )
    assert again.count(bf.BEGIN) == 1 and again.count(bf.END) == 1
    assert "## Graph build" in again and "## Later section\n\nkept" in again
    assert "Scale **0.01**" in again and "Scale **0.001**" not in again


def test_cli_renders_stored_results(bf, tmp_path) -> None:
    import json

    (tmp_path / "results.json").write_text(json.dumps({"0.001": _result(0.001, 1.0, 3.0)}))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_flow.py"), "--render", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert "Scale **0.001**" in out.stdout and bf.END in out.stdout
