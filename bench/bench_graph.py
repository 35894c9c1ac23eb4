"""Graph-build benchmark: the product vs naive DuckDB, networkx, igraph (and scipy), side by side.

Runs every method in a fresh subprocess (so peak RSS is its own) on the standard synthetic
sets of ../shared/bench (generated on demand with its gen_bipartite.py into data/bench/),
and prints wall time, peak RSS and ratios: the product's graph build (bipartite table ->
pairs >= 3 -> 5-core, ``pipeline.graph.graph_core`` under the product's default DuckDB
settings) to the naive DuckDB self-join (GROUP BY pair HAVING count >= 3, DuckDB defaults),
and the product's k-core to igraph's. The machine is shared, so product and naive run back
to back, ``--repeat`` times, alternating; the table gives medians and the median of the
per-repeat ratios, with the load average seen around each run.

    python bench/bench_graph.py                     # 1M and 20M, all methods, once
    python bench/bench_graph.py --sets 1m 5m --repeat 3
    python bench/bench_graph.py --ingest            # also ingest MB/s of 2023-format JSONL
    python bench/bench_graph.py --scipy             # also scipy sparse A^T A (pairs only)
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_BENCH = Path(os.environ.get("ACMMG_SHARED", ROOT.parent / "shared")) / "bench"
DATA = ROOT / "data" / "bench"
SETS = {"1m": ("1e6", 1), "5m": ("5e6", 5), "20m": ("2e7", 20)}
# The targets, on the 20M set.
TARGET_RATIO, TARGET_RSS_GB = 0.75, 4.0
TARGET_COMMAND_RATIO, TARGET_COMMAND_RSS_GB = 0.6, 3.0  # the whole `acmmg graph` command


def dataset(name: str) -> Path:
    path = DATA / f"r{name}.parquet"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        n, seed = SETS[name]
        subprocess.run(
            [sys.executable, str(SHARED_BENCH / "gen_bipartite.py"), n, str(path), str(seed)],
            check=True,
        )
    return path


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _purchases_view(con, path: Path) -> None:
    con.execute(
        f"CREATE VIEW purchases AS SELECT user_id, item_id AS asin FROM read_parquet('{path}')"
    )


# --- methods, each run inside its own process -------------------------------------------


def run_product(path: Path, memory_limit: str) -> dict:
    """``graph_core`` exactly as ``build_graph`` runs it (same connection settings), timed."""
    from pipeline.db import connect
    from pipeline.graph import graph_core, peel

    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        con = connect(memory_limit=memory_limit, temp_directory=tmp)
        _purchases_view(con, path)
        steps: dict = {}
        t, cpu = time.perf_counter(), time.process_time()
        stats = graph_core(con, 3, 5, timings=steps)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        # k-core alone, for the igraph comparison: peel a fresh copy of the >= 3 pairs.
        con.execute("CREATE OR REPLACE TEMP TABLE core AS SELECT * FROM pairs")
        t = time.perf_counter()
        peel(con, 5)
        kcore = time.perf_counter() - t
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "kcore_s": kcore,
        "steps": steps,
        "pairs": stats["pairs_kept"],
        "pair_instances": stats["pair_instances"],
        "pair_instances_after_prune": stats["pair_instances_after_prune"],
        "nodes": stats["nodes"],
        "edges": stats["edges"],
    }


def run_command(path: Path) -> dict:
    """The whole ``acmmg graph --reviews PATH --out DIR`` command (ingest's canonicalisation,
    the graph, the table writes), in this process, timed from the call."""
    from pipeline.cli import main as cli_main

    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        rc = cli_main(["graph", "--reviews", str(path), "--out", str(Path(tmp) / "out")])
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        if rc:
            raise RuntimeError(f"acmmg graph exited {rc}")
        stats = json.loads((Path(tmp) / "out" / "stats.json").read_text())
    return {"wall_s": wall, "cpu_s": cpu, "nodes": stats["nodes"], "edges": stats["edges"]}


def run_naive(path: Path) -> dict:
    import duckdb

    con = duckdb.connect()
    t, cpu = time.perf_counter(), time.process_time()
    con.execute(
        f"""CREATE TABLE pairs AS SELECT a.item_id AS i, b.item_id AS j, count(*) AS w
            FROM read_parquet('{path}') a JOIN read_parquet('{path}') b
              ON a.user_id = b.user_id AND a.item_id < b.item_id
            GROUP BY 1, 2 HAVING count(*) >= 3"""
    )
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    pairs = con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]
    return {"wall_s": wall, "cpu_s": cpu, "pairs": pairs}


def run_igraph_kcore(path: Path, memory_limit: str) -> dict:
    """igraph's k-core on the >= 3 pairs (pairs computed first by the product, untimed)."""
    import igraph as ig
    import numpy as np

    from pipeline.db import connect
    from pipeline.graph import project, prune
    from pipeline.sql import execute_script

    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        con = connect(memory_limit=memory_limit, temp_directory=tmp)
        _purchases_view(con, path)
        execute_script(con, "bipartite")
        prune(con, 3)
        project(con, 3)
        ij = con.execute("SELECT i, j FROM pairs").fetchnumpy()
    t = time.perf_counter()
    edges = np.column_stack([ij["i"], ij["j"]])
    g = ig.Graph(n=int(edges.max()) + 1, edges=edges)
    core = np.array(g.coreness())
    sub = g.induced_subgraph(np.flatnonzero(core >= 5))
    wall = time.perf_counter() - t
    return {"wall_s": wall, "nodes": sub.vcount(), "edges": sub.ecount()}


def run_networkx(path: Path) -> dict:
    import networkx as nx
    import pyarrow.parquet as pq
    from networkx.algorithms import bipartite

    t = time.perf_counter()
    tbl = pq.read_table(path).to_pydict()
    b = nx.Graph()
    b.add_edges_from((("u", u), ("i", i)) for u, i in zip(tbl["user_id"], tbl["item_id"]))
    items = [n for n in b if n[0] == "i"]
    proj = bipartite.weighted_projected_graph(b, items)
    g = nx.Graph((a, c) for a, c, d in proj.edges(data=True) if d["weight"] >= 3)
    core = nx.k_core(g, 5)
    return {
        "wall_s": time.perf_counter() - t,
        "nodes": core.number_of_nodes(),
        "edges": core.number_of_edges(),
    }


def run_scipy(path: Path, blocks: int) -> dict:
    """Pairs >= 3 as scipy sparse A^T A in item-row blocks (upper triangle), for comparison."""
    import numpy as np
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    t = time.perf_counter()
    tbl = pq.read_table(path, columns=["user_id", "item_id"])
    _, u = np.unique(tbl["user_id"].to_numpy(), return_inverse=True)
    _, i = np.unique(tbl["item_id"].to_numpy(), return_inverse=True)
    a = sp.csr_matrix((np.ones(len(u), np.int32), (u, i)), shape=(u.max() + 1, i.max() + 1))
    a.data[:] = 1  # duplicates were summed: count each (user, item) once
    at = a.T.tocsr()
    pairs = 0
    bounds = np.linspace(0, at.shape[0], blocks + 1).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        c = sp.triu(at[lo:hi] @ a, k=lo + 1, format="csr")  # column > global row: i < j
        pairs += int((c.data >= 3).sum())
    return {"wall_s": time.perf_counter() - t, "pairs": pairs}


def run_ingest(n_lines: int) -> dict:
    """MB/s of Amazon-2023-format JSONL (from the sample generator) into canonical tables."""
    from pipeline.ingest import IngestParams, ingest
    from pipeline.sample import SampleSpec, generate_sample
    from pipeline.sources.stage import FetchParams, fetch_sources

    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        tmp = Path(tmp)
        spec = SampleSpec(n_items=5000, n_users=max(1000, n_lines // 4))
        info = generate_sample(tmp / "s", "http://127.0.0.1:9", spec=spec, images=False)
        plain = []
        for src, name in ((info["reviews"], "Cat.jsonl"), (info["meta"], "meta_Cat.jsonl")):
            with gzip.open(src, "rb") as f, open(tmp / name, "wb") as g:
                shutil.copyfileobj(f, g)
            plain.append(tmp / name)
        mb = sum(p.stat().st_size for p in plain) / 1e6
        t = time.perf_counter()
        fetch_sources(tmp / "w", FetchParams(reviews=(str(plain[0]),), meta=(str(plain[1]),)))
        stats = ingest(tmp / "w", IngestParams())
        wall = time.perf_counter() - t
    return {"wall_s": wall, "mb": mb, "mb_per_s": mb / wall, "lines": stats["reviews_read"]}


def child(args) -> None:
    path = dataset(args.set) if args.set else None
    method = args.child
    if method == "product":
        out = run_product(path, args.memory_limit)
    elif method == "command":
        out = run_command(path)
    elif method == "naive":
        out = run_naive(path)
    elif method == "igraph":
        out = run_igraph_kcore(path, args.memory_limit)
    elif method == "networkx":
        out = run_networkx(path)
    elif method == "scipy":
        out = run_scipy(path, args.scipy_blocks)
    else:
        out = run_ingest(args.lines)
    out["peak_rss_gb"] = peak_rss_gb()
    print("RESULT " + json.dumps(out))


def spawn(method: str, set_name: str | None, timeout: float, **kw) -> dict:
    sys.stdout.flush()
    cmd = [sys.executable, __file__, "--child", method]
    if set_name:
        cmd += ["--set", set_name]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"wall_s": float("inf"), "timeout": timeout, "load": load}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["load"] = max(load, os.getloadavg()[0])
            cpu = f", CPU {out['cpu_s']:.2f} s" if "cpu_s" in out else ""
            print(f"  {set_name} {method}: {out['wall_s']:.2f} s{cpu}, load {out['load']:.1f}")
            return out
    raise RuntimeError(f"{method} failed:\n{proc.stderr[-2000:]}")


def _fmt_s(w: float | None, timeout: float) -> str:
    if w is None:
        return "-"
    return f"{w:.2f}" if w != float("inf") else f"> {timeout:.0f} (stopped)"


def _median(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else None


def main() -> None:
    from pipeline.db import DEFAULT_MEMORY_LIMIT

    p = argparse.ArgumentParser()
    p.add_argument(
        "--child", choices=["product", "command", "naive", "igraph", "networkx", "scipy", "ingest"]
    )
    p.add_argument("--set", choices=list(SETS))
    p.add_argument("--sets", nargs="+", default=["1m", "20m"], choices=list(SETS))
    p.add_argument("--repeat", type=int, default=1, help="product/naive pairs per set")
    p.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        help="the product's DuckDB memory_limit (default: the product's own default)",
    )
    p.add_argument("--networkx-timeout", type=float, default=600)
    p.add_argument("--no-networkx", action="store_true")
    p.add_argument("--scipy", action="store_true")
    p.add_argument("--scipy-blocks", type=int, default=8)
    p.add_argument(
        "--command",
        action="store_true",
        help="also time the whole `acmmg graph --reviews SET --out DIR` command per repeat",
    )
    p.add_argument("--ingest", action="store_true")
    p.add_argument("--lines", type=int, default=400_000)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"{datetime.datetime.now().isoformat(timespec='minutes')}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GB, "
        f"Python {platform.python_version()}, load at start {os.getloadavg()}",
        flush=True,
    )
    rows: list[tuple] = []
    summary: list[str] = []
    naives_by_set: dict[str, list[dict]] = {}

    def row(s, method, runs, ratio, rss=True, wall_key="wall_s"):
        rows.append(
            (
                s,
                method,
                _median(runs, wall_key),
                _median(runs, "cpu_s") if wall_key == "wall_s" else None,
                max(r["peak_rss_gb"] for r in runs) if rss and "peak_rss_gb" in runs[0] else None,
                ratio,
                max(r["load"] for r in runs),
            )
        )

    for s in args.sets:
        dataset(s)
        prods, naives, commands = [], [], []
        for _ in range(args.repeat):
            prods.append(spawn("product", s, 3600, memory_limit=args.memory_limit))
            naives.append(spawn("naive", s, 3600))
            if args.command:
                commands.append(spawn("command", s, 3600))
        ig = spawn("igraph", s, 3600, memory_limit=args.memory_limit)
        naives_by_set[s] = naives
        prod = prods[0]
        for r in prods + naives:
            assert r["pairs"] == prod["pairs"], (prod, r)
        assert (prod["nodes"], prod["edges"]) == (ig["nodes"], ig["edges"]), (prod, ig)
        naive_wall = _median(naives, "wall_s")
        ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(prods, naives)]
        ratio = statistics.median(ratios)
        cpu_ratio = _median(prods, "cpu_s") / _median(naives, "cpu_s")
        rss = max(r["peak_rss_gb"] for r in prods)
        kcore = _median(prods, "kcore_s")
        row(s, "product graph build", prods, ratio)
        if commands:
            for r in commands:
                assert (r["nodes"], r["edges"]) == (prod["nodes"], prod["edges"]), (prod, r)
            cmd_ratio = statistics.median(
                a["wall_s"] / b["wall_s"] for a, b in zip(commands, naives)
            )
            row(s, "product whole command (`acmmg graph`)", commands, cmd_ratio)
        row(s, "naive DuckDB self-join (pairs only)", naives, 1.0)
        row(s, "product k-core (SQL peeling)", prods, kcore / ig["wall_s"], False, "kcore_s")
        row(s, "igraph k-core (build + coreness)", [ig], 1.0)
        if args.scipy:
            sc = spawn("scipy", s, 3600, scipy_blocks=args.scipy_blocks)
            assert sc["pairs"] == prod["pairs"], (prod, sc)
            row(s, "scipy sparse A^T A (pairs only)", [sc], sc["wall_s"] / naive_wall)
        if s == "1m" and not args.no_networkx:
            nxr = spawn("networkx", s, args.networkx_timeout)
            if "nodes" in nxr:
                assert (nxr["nodes"], nxr["edges"]) == (prod["nodes"], prod["edges"]), nxr
            row(s, "networkx projection + k_core", [nxr], nxr["wall_s"] / naive_wall)
        steps = ", ".join(
            f"{k} {_median([r['steps'] for r in prods], k):.2f}" for k in prod["steps"]
        )
        print(
            f"{s}: {prod['pair_instances']:,} pair instances "
            f"({prod['pair_instances_after_prune']:,} after pruning), {prod['pairs']:,} pairs >= 3, "
            f"5-core {prod['nodes']:,} nodes / {prod['edges']:,} edges\n"
            f"  product steps (median wall s): {steps}\n"
            f"  product/naive wall per repeat: {', '.join(f'{x:.2f}' for x in ratios)}; "
            f"CPU-time ratio (medians): {cpu_ratio:.2f}",
            flush=True,
        )
        if s == "20m":
            summary = [
                f"graph build / naive = {ratio:.2f} (target <= {TARGET_RATIO}): "
                + ("met" if ratio <= TARGET_RATIO else "MISSED"),
                f"graph build peak RSS = {rss:.2f} GB (target <= {TARGET_RSS_GB:.0f} GB): "
                + ("met" if rss <= TARGET_RSS_GB else "MISSED"),
                f"k-core / igraph = {kcore / ig['wall_s']:.2f} (target <= 1): "
                + ("met" if kcore <= ig["wall_s"] else "MISSED"),
            ]
            if commands:
                cmd_rss = max(r["peak_rss_gb"] for r in commands)
                summary += [
                    f"whole command / naive = {cmd_ratio:.2f} (target <= {TARGET_COMMAND_RATIO}): "
                    + ("met" if cmd_ratio <= TARGET_COMMAND_RATIO else "MISSED"),
                    f"whole command peak RSS = {cmd_rss:.2f} GB (target <= "
                    f"{TARGET_COMMAND_RSS_GB:.0f} GB): "
                    + ("met" if cmd_rss <= TARGET_COMMAND_RSS_GB else "MISSED"),
                ]
    print(
        f"\nproduct memory_limit {args.memory_limit}; {args.repeat} product/naive pair(s) per set, "
        "medians; CPU s = user + system time of the process (all threads)\n\n"
        "| set | method | wall s | CPU s | peak RSS GB | ratio | max load |\n"
        "|---|---|---|---|---|---|---|"
    )
    for s, m, w, cpu, r, ratio, load in rows:
        if ratio == float("inf"):  # stopped at the timeout: at least this much
            ratio_s = f"> {args.networkx_timeout / _median(naives_by_set[s], 'wall_s'):.0f}x"
        else:
            ratio_s = f"{ratio:.2f}x"
        print(
            f"| {s} | {m} | {_fmt_s(w, args.networkx_timeout)} | {_fmt_s(cpu, 0)} | "
            f"{_fmt_s(r, 0)} | {ratio_s} | {load:.1f} |"
        )
    print("(graph ratios: wall time to the naive DuckDB's; k-core ratios: to igraph's)")
    for line in summary:
        print("20M target: " + line)
    if args.ingest:
        ing = spawn("ingest", None, 3600, lines=args.lines)
        print(
            f"\ningest: {ing['mb']:.1f} MB of 2023 JSONL (reviews + meta, uncompressed) in "
            f"{ing['wall_s']:.2f} s = {ing['mb_per_s']:.1f} MB/s ({ing['lines']} review lines), "
            f"peak RSS {ing['peak_rss_gb']:.2f} GB, load {ing['load']:.1f}"
        )
    print(f"load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
