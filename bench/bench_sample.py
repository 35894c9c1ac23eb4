"""Sample generator benchmark: ``acmmg sample --profile electronics --scale S`` (streamed,
pipeline/sample_profile.py) side by side with the demo generator (``acmmg sample --items I
--users U``, pipeline/sample.py, every review a Python string) on the same number of reviews.

Every run is a fresh ``python -m pipeline sample`` process. Reported per run: wall time, CPU
time of the whole process tree (worker processes included), peak RSS of the tree (the sum over
its processes, sampled every 0.1 s with psutil), reviews written and reviews per wall second,
output sizes (gzip files, images) and mean line lengths. With ``--graph``, each profile sample
is then built with ``acmmg graph --reviews ... --meta ...`` (ingest, item cleaning, >= 3
co-buyers, 5-core) and its nodes / edges are reported.

    python bench/bench_sample.py                              # scales 0.01 and 0.1, baseline
    python bench/bench_sample.py --scales 0.02 0.1 --graph
    python bench/bench_sample.py --scales 1 --no-baseline     # the full size (long)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "bench"
OLD_REVIEWS_PER_USER = 4.84  # what the demo generator's SampleSpec makes (968 k / 200 k users)


def run(cmd: list[str]) -> dict:
    """Run ``cmd``; wall s, CPU s of its process tree, peak RSS of the tree (GB), stdout."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    top, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [top, *top.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass  # a worker ended between listing and reading
        time.sleep(0.1)
    wall = time.perf_counter() - t
    out = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    load = max(load, os.getloadavg()[0])
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_gb": peak / 1e9, "stdout": out, "load": load}


def line_stats(path: Path) -> tuple[int, int]:
    """(lines, uncompressed bytes) of a gzip file, streamed (concatenated members too)."""
    lines = size = 0
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            while block:
                chunk = d.decompress(block)
                lines += chunk.count(b"\n")
                size += len(chunk)
                block = d.unused_data if d.eof else b""
                if d.eof:
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return lines, size


def folder_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.glob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def measure(name: str, cmd: list[str], out: Path, reviews: str, meta: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = run(cmd)
    summary = json.loads(r.pop("stdout"))
    n_rev, raw_rev = line_stats(out / reviews)
    n_meta, raw_meta = line_stats(out / meta)
    n_img, img_bytes = folder_size(out / "images")
    r.update(
        name=name,
        summary=summary,
        reviews=summary["reviews_written"],
        review_lines=n_rev,
        review_line_b=raw_rev / n_rev,
        meta_line_b=raw_meta / n_meta,
        reviews_gz_mb=(out / reviews).stat().st_size / 1e6,
        meta_gz_mb=(out / meta).stat().st_size / 1e6,
        images=n_img,
        images_mb=img_bytes / 1e6,
    )
    r["reviews_per_s"] = r["reviews"] / r["wall_s"]
    print(
        f"  {name}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak RSS "
        f"{r['peak_rss_gb']:.2f} GB, {r['reviews']:,} reviews ({r['reviews_per_s']:,.0f}/s), "
        f"{n_img:,} images, load {r['load']:.1f}",
        flush=True,
    )
    return r


def profile_run(scale: float, workers: int, images: bool) -> dict:
    out = DATA / f"sample-electronics-{scale:g}"
    cmd = [sys.executable, "-m", "pipeline", "sample", "--profile", "electronics"]
    cmd += ["--scale", str(scale), "--workers", str(workers), "--out", str(out)]
    cmd += [] if images else ["--no-images"]
    name = f"profile scale {scale:g}, {workers} workers" + ("" if images else ", no images")
    r = measure(name, cmd, out, "Electronics.jsonl.gz", "meta_Electronics.jsonl.gz")
    r["out"] = out
    return r


def old_run(reviews: int, images: bool) -> dict:
    users = round(reviews / OLD_REVIEWS_PER_USER)
    items = users // 10
    out = DATA / f"sample-demo-{users}"
    cmd = [sys.executable, "-m", "pipeline", "sample", "--items", str(items)]
    cmd += ["--users", str(users), "--out", str(out)] + ([] if images else ["--no-images"])
    name = f"demo generator, {items:,} items / {users:,} users" + ("" if images else ", no images")
    return measure(name, cmd, out, "Demo.jsonl.gz", "meta_Demo.jsonl.gz")


def graph_run(sample: dict) -> dict:
    out, work = sample["out"], sample["out"].with_name(sample["out"].name + "-graph")
    shutil.rmtree(work, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "graph",
        "--reviews",
        str(out / "Electronics.jsonl.gz"),
    ]
    cmd += ["--meta", str(out / "meta_Electronics.jsonl.gz"), "--out", str(work)]
    r = run(cmd)
    stats = json.loads(r.pop("stdout").splitlines()[0])
    r.update(stats)
    print(
        f"  graph of {out.name}: {stats['nodes']:,} nodes / {stats['edges']:,} edges, "
        f"{stats['pair_instances']:,} pair instances, {r['wall_s']:.1f} s, "
        f"{r['peak_rss_gb']:.2f} GB",
        flush=True,
    )
    return r


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-baseline", action="store_true", help="skip the demo generator runs")
    p.add_argument("--graph", action="store_true", help="also build each profile sample")
    args = p.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    print(
        f"{datetime.datetime.now().isoformat(timespec='minutes')}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load at start {os.getloadavg()}",
        flush=True,
    )
    rows, graphs = [], []
    for scale in args.scales:
        new = profile_run(scale, args.workers, images=True)
        rows.append(new)
        if args.graph:
            graphs.append((scale, graph_run(new)))
        if not args.no_baseline and scale == min(args.scales):
            # Side by side on the same number of reviews: one process each, then the profile
            # with as many workers, with and without images.
            for images in (False, True):
                one = profile_run(scale, 1, images)
                old = old_run(new["reviews"], images)
                one["ratio"] = old["wall_s"] / one["wall_s"]
                rows += [one, old]
        shutil.rmtree(new["out"], ignore_errors=True)
    print("\n| run | reviews | wall s | CPU s | peak RSS GB | reviews/s | reviews.gz MB | "
          "meta.gz MB | images (MB) | review line B | meta line B | speed-up |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = f"**{r['ratio']:.1f}x** the demo generator" if "ratio" in r else ""
        print(
            f"| {r['name']} | {r['reviews']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['peak_rss_gb']:.2f} | {r['reviews_per_s']:,.0f} | {r['reviews_gz_mb']:.1f} | "
            f"{r['meta_gz_mb']:.1f} | {r['images']:,} ({r['images_mb']:.0f}) | "
            f"{r['review_line_b']:.0f} | {r['meta_line_b']:.0f} | {speed} |"
        )
    if graphs:
        print("\n| scale | 5-core nodes | edges | pair instances | graph wall s | peak RSS GB |")
        print("|---|---|---|---|---|---|")
        for scale, g in graphs:
            print(
                f"| {scale:g} | {g['nodes']:,} | {g['edges']:,} | {g['pair_instances']:,} | "
                f"{g['wall_s']:.1f} | {g['peak_rss_gb']:.2f} |"
            )
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
