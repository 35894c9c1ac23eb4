"""Relations-stage benchmark: the product's stage vs the previous implementation, side by side.

Two kinds of input, generated once into ``data/bench/relations/``:

- demo-shaped categories (``pipeline.sample``) at 1x, 10x and 50x the demo's size (400 items
  / 4,000 users per 1x), through ingest, clean, graph (``acmmg graph``) and the classes stage
  (level 2, as the demo): the whole stage is compared, and the vote alone;
- the graph bench's skewed bipartite sets (``../shared/bench/gen_bipartite.py``: lognormal
  user degrees with a power-user tail, Zipf item popularity), 1M and 5M rows, through
  ``acmmg graph`` (no metadata, so the vote alone), users put in 10 clusters by a hash.

Every method runs in a fresh subprocess (peak RSS is its own ``ru_maxrss``, CPU s its user +
system time, DuckDB's threads included):

- product stage: ``pipeline.relations.build_relations`` with its defaults (DuckDB under its
  2GB default memory limit, the vocabulary over all reviews, share vectors deduplicated in
  DuckDB, the vote from basket pair instances, the silhouette in 64 MB blocks);
- previous stage: ``tests.relations_oracle.previous_relations``, the stage as it was before
  (class shares of graph-node purchases in a dense users x classes float64 matrix filled
  through a Python list, np.unique over it, the vote as one join of every edge with every
  buyer of its source item, DuckDB without a memory limit, sklearn's 1 GB silhouette blocks);
- vote only: the two votes on the same user clusters; their output is compared row for row
  (the bench stops if they differ).

"Rows formed" is the vote's intermediate: pair instances of the clustered users' baskets
(product), one row per edge per buyer of its source item (previous). Ratios are product /
previous, medians of the per-repeat ratios, by wall and by CPU time (the CPU one moves less
when other jobs share the machine).

    python bench/bench_relations.py                       # 1x 10x 50x, 1m 5m; 3 repeats
    python bench/bench_relations.py --scales 1 --skewed --repeat 1

(``ACMMG_SHARED`` names the shared folder when the checkout is not beside it, e.g. in a
worktree: ``ACMMG_SHARED=/work/shared``.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
DATA = ROOT / "data" / "bench" / "relations"
SHARED_BENCH = Path(os.environ.get("ACMMG_SHARED", ROOT.parent / "shared")) / "bench"
DEMO_ITEMS, DEMO_USERS = 400, 4000
SKEWED = {"1m": ("1e6", 1), "5m": ("5e6", 5)}  # the graph bench's sets
VOTE_COLUMNS = ["src_asin", "dst_asin", "relation_id", "relation_users", "majority_users"]
HASH_CLUSTERS = """
CREATE TABLE user_clusters AS
SELECT user_id, (hash(user_id) % 10)::BIGINT AS cluster
FROM bipartite SEMI JOIN nodes USING (asin)
GROUP BY user_id HAVING count(*) >= 2
"""


def prepare(name: str) -> Path:
    """The work directory of one input ("1x", "50x", "1m", ...), generated on first use."""
    base = DATA / name
    work = base / "work"
    clusters = work / "relations" / "user_clusters.parquet"
    if not (work / "edges.parquet").exists():
        _generate(name, base, work)
    if not clusters.exists():  # the clusters both votes use
        if name in SKEWED:
            import duckdb

            con = duckdb.connect()
            for view in ("bipartite", "nodes"):
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM '{work / (view + '.parquet')}'")
            con.execute(HASH_CLUSTERS)
            clusters.parent.mkdir(exist_ok=True)
            con.execute(f"COPY user_clusters TO '{clusters}'")
        else:
            from pipeline.relations import build_relations

            build_relations(work)
    return work


def _generate(name: str, base: Path, work: Path) -> None:
    from pipeline.cli import main

    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    if name in SKEWED:
        n, seed = SKEWED[name]
        reviews = base / f"r{name}.parquet"
        gen = [sys.executable, str(SHARED_BENCH / "gen_bipartite.py"), n, str(reviews), str(seed)]
        subprocess.run(gen, check=True)
        args = ["graph", "--reviews", str(reviews), "--out", str(work)]
    else:
        from pipeline.sample import SampleSpec, generate_sample

        scale = int(name.rstrip("x"))
        spec = SampleSpec(n_items=DEMO_ITEMS * scale, n_users=DEMO_USERS * scale)
        generate_sample(base / "sample", "http://127.0.0.1:9", seed=0, spec=spec, images=False)
        args = ["graph", "--reviews", str(base / "sample" / "Demo.jsonl.gz")]
        args += ["--meta", str(base / "sample" / "meta_Demo.jsonl.gz"), "--out", str(work)]
    if main(args) != 0:
        raise SystemExit(f"graph failed for {name}")
    if name not in SKEWED:
        from pipeline.classes import ClassesParams, choose_classes

        choose_classes(work, ClassesParams(taxonomy_level=2))


def _link_inputs(work: Path, dest: Path) -> Path:
    """A fresh work directory linking to the inputs of ``work``."""
    dest.mkdir(parents=True)
    for p in work.iterdir():
        if p.name not in ("relations", "stats", ".stamps", ".duckdb_tmp"):
            (dest / p.name).symlink_to(p.resolve())
    return dest


def _vote_db(work: Path):
    import duckdb

    con = duckdb.connect()
    for name in ("bipartite", "edges"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM '{work / (name + '.parquet')}'")
    clusters = work / "relations" / "user_clusters.parquet"
    con.execute(f"CREATE TABLE user_clusters AS SELECT * FROM '{clusters}'")
    return con


def child(method: str, work: Path, out: Path) -> dict:
    """Run one method in this process; return its measurements (the rows formed by the
    previous join are counted after the clock stops)."""
    from tests import relations_oracle

    t0, c0 = time.perf_counter(), time.process_time()
    rows = None
    if method == "product":
        from pipeline.relations import build_relations

        rows = build_relations(_link_inputs(work, out / "work"))["vote_pair_instances"]
    elif method == "previous":
        relations_oracle.previous_relations(work)
    elif method == "vote-product":
        from pipeline.relations.votes import edge_votes

        votes, rows = edge_votes(_vote_db(work))
        votes.select(VOTE_COLUMNS).write_parquet(out / f"{method}.parquet")
    else:
        relations_oracle.join_votes(_vote_db(work)).write_parquet(out / f"{method}.parquet")
    result = {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    if rows is None:
        rows = int(_vote_db(work).sql(relations_oracle.JOIN_VOTE_ROWS_SQL).fetchall()[0][0])
    result["rows"] = rows
    return result


def run_child(method: str, work: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", method, "--work", str(work), "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["load"] = os.getloadavg()[0]
    return res


def bench_input(name: str, repeat: int) -> list[dict]:
    import polars as pl

    work = prepare(name)
    pairs = [("vote-product", "vote-previous")]
    if name not in SKEWED:
        pairs.insert(0, ("product", "previous"))
    runs: dict[str, list[dict]] = {}
    for _ in range(repeat):
        for a, b in pairs:  # product then baseline, back to back
            with tempfile.TemporaryDirectory(dir=DATA) as tmp:
                for method in (a, b):
                    runs.setdefault(method, []).append(run_child(method, work, Path(tmp)))
                if a == "vote-product":
                    got = pl.read_parquet(Path(tmp) / f"{a}.parquet")
                    if not got.equals(pl.read_parquet(Path(tmp) / f"{b}.parquet")):
                        raise SystemExit(f"{name}: the two votes differ")
    info = {
        "input": name,
        "edges": pl.read_parquet(work / "edges.parquet").height,
        "bipartite": pl.read_parquet(work / "bipartite.parquet").height,
    }
    rows = []
    for a, b in pairs:
        for method in (a, b):
            med = {k: statistics.median(r[k] for r in runs[method]) for k in runs[method][0]}
            rows.append({**info, "method": method, **med})
        for key in ("wall_s", "cpu_s"):
            ratio = [x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)]
            rows[-2][f"ratio_{key}"] = statistics.median(ratio)
    return rows


NAMES = {
    "product": "**product stage**",
    "previous": "previous stage",
    "vote-product": "**product vote** (basket pair instances)",
    "vote-previous": "previous vote (edge x source-buyer join)",
}


def table(rows: list[dict]) -> str:
    out = [
        "| input | edges | bipartite rows | method | rows formed | wall s | CPU s | peak RSS GB "
        "| wall ratio | CPU ratio | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "ratio_wall_s" in r:
            ratios = f"**{r['ratio_wall_s']:.2f}x** | **{r['ratio_cpu_s']:.2f}x**"
        else:
            ratios = "1.00x | 1.00x"
        out.append(
            f"| {r['input']} | {r['edges']:,} | {r['bipartite']:,} | {NAMES[r['method']]} "
            f"| {int(r['rows']):,} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['rss_gb']:.2f} "
            f"| {ratios} | {r['load']:.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="*", type=int, default=[1, 10, 50])
    ap.add_argument("--skewed", nargs="*", default=list(SKEWED), choices=list(SKEWED))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prepare", action="store_true", help="only generate the inputs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.work, args.out)))
        return
    DATA.mkdir(parents=True, exist_ok=True)
    names = [f"{s}x" for s in args.scales] + list(args.skewed)
    rows = []
    for name in names:
        if args.prepare:
            print(name, prepare(name))
            continue
        rows += bench_input(name, args.repeat)
        print(table(rows), flush=True)
    print(f"\n{datetime.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
