"""Graph-build benchmark: the product vs naive DuckDB, networkx and igraph, side by side.

Runs every method in a fresh subprocess (so peak RSS is its own) on the standard synthetic
sets of ../shared/bench (generated on demand with its gen_bipartite.py into data/bench/),
and prints wall time, peak RSS and ratios to the naive DuckDB self-join.

    python bench/bench_graph.py                  # 1M and 20M, all methods
    python bench/bench_graph.py --sets 1m 5m     # choose sets
    python bench/bench_graph.py --ingest         # also ingest MB/s of 2023-format JSONL
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = Path(os.environ.get("ACMMG_SHARED", ROOT.parent / "shared")) / "bench"
DATA = ROOT / "data" / "bench"
SETS = {"1m": ("1e6", 1), "5m": ("5e6", 5), "20m": ("2e7", 20)}


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


# --- methods, each run inside its own process -------------------------------------------


def run_product(path: Path, memory_limit: str) -> dict:
    from pipeline.db import connect
    from pipeline.graph import graph_core

    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        con = connect(memory_limit=memory_limit, temp_directory=tmp)
        con.execute(
            f"CREATE VIEW purchases AS SELECT user_id, item_id AS asin FROM read_parquet('{path}')"
        )
        t = time.perf_counter()
        stats = graph_core(con, 3, 5)
        wall = time.perf_counter() - t
        # k-core alone, for the igraph comparison: peel a fresh copy of the >= 3 pairs.
        from pipeline.graph import peel

        con.execute("CREATE OR REPLACE TEMP TABLE core AS SELECT * FROM pairs")
        t = time.perf_counter()
        peel(con, 5)
        kcore = time.perf_counter() - t
    return {
        "wall_s": wall,
        "kcore_s": kcore,
        "pairs": stats["pairs_kept"],
        "nodes": stats["nodes"],
        "edges": stats["edges"],
    }


def run_naive(path: Path) -> dict:
    import duckdb

    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(
        f"""CREATE TABLE pairs AS SELECT a.item_id AS i, b.item_id AS j, count(*) AS w
            FROM read_parquet('{path}') a JOIN read_parquet('{path}') b
              ON a.user_id = b.user_id AND a.item_id < b.item_id
            GROUP BY 1, 2 HAVING count(*) >= 3"""
    )
    wall = time.perf_counter() - t
    return {"wall_s": wall, "pairs": con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]}


def run_igraph_kcore(path: Path) -> dict:
    """igraph's k-core on the >= 3 pairs (pairs computed first, untimed)."""
    import igraph as ig
    import numpy as np

    from pipeline.db import connect
    from pipeline.graph import project, prune
    from pipeline.sql import execute_script

    con = connect()
    con.execute(
        f"CREATE VIEW purchases AS SELECT user_id, item_id AS asin FROM read_parquet('{path}')"
    )
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


def run_ingest(n_lines: int) -> dict:
    """MB/s of Amazon-2023-format JSONL (from the sample generator) into canonical tables."""
    from pipeline.ingest import ingest
    from pipeline.sample import SampleSpec, generate_sample

    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        tmp = Path(tmp)
        spec = SampleSpec(n_items=5000, n_users=max(1000, n_lines // 4))
        info = generate_sample(tmp / "s", "http://127.0.0.1:9", spec=spec, images=False)
        import gzip
        import shutil

        plain = tmp / "Cat.jsonl"
        with gzip.open(info["reviews"], "rb") as f, open(plain, "wb") as g:
            shutil.copyfileobj(f, g)
        mb = plain.stat().st_size / 1e6
        t = time.perf_counter()
        stats = ingest([str(plain)], None, tmp / "w")
        wall = time.perf_counter() - t
    return {"wall_s": wall, "mb": mb, "mb_per_s": mb / wall, "lines": stats["reviews_read"]}


def child(args) -> None:
    path = dataset(args.set) if args.set else None
    method = args.child
    if method == "product":
        out = run_product(path, args.memory_limit)
    elif method == "naive":
        out = run_naive(path)
    elif method == "igraph":
        out = run_igraph_kcore(path)
    elif method == "networkx":
        out = run_networkx(path)
    else:
        out = run_ingest(args.lines)
    out["peak_rss_gb"] = peak_rss_gb()
    print("RESULT " + json.dumps(out))


def spawn(method: str, set_name: str | None, timeout: float, **kw) -> dict:
    cmd = [sys.executable, __file__, "--child", method]
    if set_name:
        cmd += ["--set", set_name]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"wall_s": float("inf"), "timeout": timeout}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{method} failed:\n{proc.stderr[-2000:]}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=["product", "naive", "igraph", "networkx", "ingest"])
    p.add_argument("--set", choices=list(SETS))
    p.add_argument("--sets", nargs="+", default=["1m", "20m"], choices=list(SETS))
    p.add_argument("--memory-limit", default="2GB", help="the product's DuckDB memory_limit")
    p.add_argument("--networkx-timeout", type=float, default=600)
    p.add_argument("--no-networkx", action="store_true")
    p.add_argument("--ingest", action="store_true")
    p.add_argument("--lines", type=int, default=400_000)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    for s in args.sets:
        dataset(s)
        prod = spawn("product", s, 3600, memory_limit=args.memory_limit)
        naive = spawn("naive", s, 3600)
        ig = spawn("igraph", s, 3600)
        assert prod["pairs"] == naive["pairs"], (prod, naive)
        assert (prod["nodes"], prod["edges"]) == (ig["nodes"], ig["edges"]), (prod, ig)
        rows.append(
            (
                s,
                "product graph build",
                prod["wall_s"],
                prod["peak_rss_gb"],
                prod["wall_s"] / naive["wall_s"],
            )
        )
        rows.append((s, "naive DuckDB self-join", naive["wall_s"], naive["peak_rss_gb"], 1.0))
        rows.append(
            (
                s,
                "product k-core (SQL peeling)",
                prod["kcore_s"],
                None,
                prod["kcore_s"] / ig["wall_s"],
            )
        )
        rows.append((s, "igraph k-core (build + coreness)", ig["wall_s"], ig["peak_rss_gb"], 1.0))
        if s == "1m" and not args.no_networkx:
            nxr = spawn("networkx", s, args.networkx_timeout)
            rows.append(
                (
                    s,
                    "networkx projection + k_core",
                    nxr["wall_s"],
                    nxr.get("peak_rss_gb"),
                    nxr["wall_s"] / naive["wall_s"],
                )
            )
        print(
            f"{s}: {prod['pairs']} pairs >= 3, 5-core {prod['nodes']} nodes / "
            f"{prod['edges']} edges",
            flush=True,
        )
    print("\n| set | method | wall s | peak RSS GB | ratio |\n|---|---|---|---|---|")
    for s, m, w, r, ratio in rows:
        rss = f"{r:.2f}" if r is not None else "-"
        wall = f"{w:.2f}" if w != float("inf") else f"> {args.networkx_timeout:.0f}"
        print(f"| {s} | {m} | {wall} | {rss} | {ratio:.2f}x |")
    print("(graph ratios: to the naive DuckDB time; k-core ratios: to igraph's time)")
    if args.ingest:
        ing = spawn("ingest", None, 3600, lines=args.lines)
        print(
            f"\ningest: {ing['mb']:.1f} MB of 2023 JSONL in {ing['wall_s']:.2f} s = "
            f"{ing['mb_per_s']:.1f} MB/s ({ing['lines']} lines), peak RSS "
            f"{ing['peak_rss_gb']:.2f} GB"
        )


if __name__ == "__main__":
    main()
