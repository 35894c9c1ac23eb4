"""Partitioned projection benchmark: the graph stage split over P user-hash partitions and a
sum merge (pipeline.graph_partitions), side by side with the single-machine build_graph.

Each step runs in a fresh subprocess, as it would on its own cluster machine, so each peak
RSS is its own: the single-machine build; prepare; every partition; every merge bucket; the
final merge (k-core and writes). Both write
the same work-directory files (edges, nodes, bipartite, stats), which are compared byte for
byte. Reported, as ratios to the single-machine wall time:

- total work: every step, one after another on this machine;
- critical path: prepare + the slowest partition + the slowest bucket + the final merge, the
  wall time with P machines like this one taking the partitions, then the buckets, at once
  (transfers over a shared filesystem and task scheduling not counted).

    python bench/bench_partitions.py                         # 5M, P = 4
    python bench/bench_partitions.py --sets 5m 20m --partitions 4 8 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_graph import DATA, SETS, dataset  # noqa: E402

OUTPUTS = ("edges.parquet", "nodes.parquet", "bipartite.parquet", "stats.json")


def reviews_for(set_name: str) -> Path:
    """The set as a work directory's reviews.parquet (user_id, asin), made once, untimed."""
    out = DATA / f"reviews-{set_name}.parquet"
    if not out.exists():
        import duckdb

        tmp = out.with_suffix(".tmp")
        duckdb.connect().execute(
            f"COPY (SELECT user_id, item_id AS asin FROM read_parquet('{dataset(set_name)}')) "
            f"TO '{tmp}' (FORMAT parquet)"
        )
        tmp.rename(out)
    return out


def fresh_work(path: Path, reviews: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "reviews.parquet").symlink_to(reviews)
    return path


def child(args) -> None:
    from pipeline import graph_partitions as gp
    from pipeline.graph import build_graph

    work, n = Path(args.work), args.partitions
    t = time.perf_counter()
    if args.child == "single":
        out = build_graph(work)
    elif args.child == "prepare":
        out = gp.prepare_partitions(work, n)
    elif args.child == "partition":
        out = gp.project_partition(work, args.part, n)
    elif args.child == "bucket":
        out = gp.merge_bucket(work, args.part, n)
    else:
        out = gp.merge_partitions(work, n)
    result = {
        "wall_s": time.perf_counter() - t,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "out": out,
    }
    print("RESULT " + json.dumps(result))


def spawn(step: str, work: Path, partitions: int = 1, part: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--work", str(work)]
    cmd += ["--partitions", str(partitions), "--part", str(part)]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["load"] = max(load, os.getloadavg()[0])
            return out
    raise RuntimeError(f"{step} failed:\n{proc.stderr[-3000:]}")


def run_partitioned(work: Path, n: int) -> dict:
    prep = spawn("prepare", work, n)
    parts = [spawn("partition", work, n, p) for p in range(n)]
    buckets = [spawn("bucket", work, n, b) for b in range(n)]
    merge = spawn("merge", work, n)
    steps = [prep, *parts, *buckets, merge]
    return {
        "prepare_s": prep["wall_s"],
        "partition_max_s": max(p["wall_s"] for p in parts),
        "bucket_max_s": max(b["wall_s"] for b in buckets),
        "merge_s": merge["wall_s"],
        "total_s": sum(x["wall_s"] for x in steps),
        "critical_s": prep["wall_s"]
        + max(p["wall_s"] for p in parts)
        + max(b["wall_s"] for b in buckets)
        + merge["wall_s"],
        "rss": {
            "prepare": prep["peak_rss_gb"],
            "partition": max(p["peak_rss_gb"] for p in parts),
            "bucket": max(b["peak_rss_gb"] for b in buckets),
            "merge": merge["peak_rss_gb"],
        },
        "partial_pairs": sum(p["out"]["pairs"] for p in parts),
        "load": max(x["load"] for x in steps),
        "stats": merge["out"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=["single", "prepare", "partition", "bucket", "merge"])
    p.add_argument("--work")
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--partitions", type=int, nargs="+", default=[4])
    p.add_argument("--sets", nargs="+", default=["5m"], choices=list(SETS))
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    if args.child:
        args.partitions = args.partitions[0]
        child(args)
        return
    print(
        f"{datetime.datetime.now().isoformat(timespec='minutes')}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load at start {os.getloadavg()}",
        flush=True,
    )
    table = []
    for s in args.sets:
        reviews = reviews_for(s)
        for n in args.partitions:
            singles, parted = [], []
            for _ in range(args.repeat):
                a = fresh_work(DATA / f"part-bench-{s}-single", reviews)
                singles.append(spawn("single", a))
                b = fresh_work(DATA / f"part-bench-{s}-p{n}", reviews)
                parted.append(run_partitioned(b, n))
                for name in OUTPUTS:
                    assert (a / name).read_bytes() == (b / name).read_bytes(), (s, n, name)
                print(
                    f"  {s} P={n}: single {singles[-1]['wall_s']:.2f} s, partitioned total "
                    f"{parted[-1]['total_s']:.2f} s, critical path {parted[-1]['critical_s']:.2f}"
                    f" s, load {max(singles[-1]['load'], parted[-1]['load']):.1f}",
                    flush=True,
                )
            single = statistics.median(r["wall_s"] for r in singles)

            def med(key: str, runs=parted) -> float:
                return statistics.median(r[key] for r in runs)

            stats = parted[0]["stats"]
            table.append(
                (
                    s,
                    n,
                    single,
                    max(r["peak_rss_gb"] for r in singles),
                    med("prepare_s"),
                    med("partition_max_s"),
                    med("bucket_max_s"),
                    med("merge_s"),
                    med("total_s") / single,
                    med("critical_s") / single,
                    {
                        k: max(r["rss"][k] for r in parted)
                        for k in ("prepare", "partition", "bucket", "merge")
                    },
                    parted[0]["partial_pairs"] / max(stats["pairs_kept"], 1),
                    max(r["load"] for r in singles + parted),
                )
            )
            print(
                f"{s}: {stats['pair_instances_after_prune']:,} pair instances to form, "
                f"{parted[0]['partial_pairs']:,} partial pairs written by {n} partitions, "
                f"{stats['pairs_kept']:,} pairs >= 3, 5-core {stats['nodes']:,} nodes / "
                f"{stats['edges']:,} edges; artifacts byte-identical",
                flush=True,
            )
    print(
        f"\n{args.repeat} run(s) each, medians; each step in its own process\n\n"
        "| set | P | single s | single RSS GB | prepare s | slowest partition s "
        "| slowest bucket s | final merge s | total / single | critical path / single "
        "| peak RSS GB prepare / partition / bucket / merge | partial pairs / kept | max load |"
        "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for s, n, single, srss, prep, pmax, bmax, merge, tot, crit, rss, amp, load in table:
        rss_s = " / ".join(f"{v:.2f}" for v in rss.values())
        print(
            f"| {s} | {n} | {single:.2f} | {srss:.2f} | {prep:.2f} | {pmax:.2f} | {bmax:.2f} "
            f"| {merge:.2f} | {tot:.2f}x | {crit:.2f}x | {rss_s} | {amp:.1f} | {load:.1f} |"
        )
    print(f"load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
