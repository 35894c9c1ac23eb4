"""Graph stages against a brute-force oracle, their invariants, and the CLI contract."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.graph import GraphParams, build_graph, k_core, node_table
from pipeline.sql import execute_script
from tests.stage_helpers import ingest_dumps


def _oracle(purchases: list[tuple[str, str]], min_copurchase: int, k: int) -> set:
    """networkx: bipartite weighted projection (shared users), weight filter, k_core."""
    b = nx.Graph()
    users = {("u", u) for u, _ in purchases}
    b.add_nodes_from(users, bipartite=0)
    b.add_edges_from((("u", u), ("i", i)) for u, i in purchases)
    items = {n for n in b if n[0] == "i"}
    proj = nx.bipartite.weighted_projected_graph(b, items)
    g = nx.Graph()
    g.add_edges_from(
        (a[1], c[1], d) for a, c, d in proj.edges(data=True) if d["weight"] >= min_copurchase
    )
    core = nx.k_core(g, k)
    return {(min(a, c), max(a, c), core[a][c]["weight"]) for a, c in core.edges()}


def _random_purchases(seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    n_users, n_items = int(rng.integers(40, 200)), int(rng.integers(10, 40))
    out = []
    for u in range(n_users):
        d = int(min(n_items, rng.geometric(0.25)))
        home = rng.integers(0, n_items, size=3)
        for _ in range(d):
            i = int(rng.choice(home)) if rng.random() < 0.7 else int(rng.integers(n_items))
            out.append((f"u{u}", f"i{i:03d}"))
    return out


def _work_from(purchases, tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        {
            "user_id": [u for u, _ in purchases],
            "asin": [i for _, i in purchases],
            "rating": [None] * len(purchases),
            "ts": [None] * len(purchases),
        },
        schema={"user_id": pl.String, "asin": pl.String, "rating": pl.Float64, "ts": pl.Int64},
    ).write_parquet(tmp_path / "reviews.parquet")
    return tmp_path


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("min_copurchase,k", [(3, 5), (2, 3)])
def test_graph_equals_networkx_oracle(seed, min_copurchase, k, tmp_path):
    purchases = _random_purchases(seed)
    work = _work_from(purchases, tmp_path)
    stats = build_graph(work, GraphParams(min_copurchase=min_copurchase, k=k))
    edges = pl.read_parquet(work / "edges.parquet")
    got = set(edges.select(["src_asin", "dst_asin", "weight"]).iter_rows())
    assert got == _oracle(purchases, min_copurchase, k)
    # Invariants of the output.
    assert (edges["src_asin"] < edges["dst_asin"]).all()
    assert (edges["weight"] >= min_copurchase).all()
    assert not edges.select(["src_asin", "dst_asin"]).is_duplicated().any()
    nodes = pl.read_parquet(work / "nodes.parquet")
    assert (nodes["degree"] >= k).all()
    assert nodes.equals(node_table(edges))
    # Counters against direct computation.
    distinct = set(purchases)
    per_user = Counter(u for u, _ in distinct)
    assert stats["pair_instances"] == sum(d * (d - 1) // 2 for d in per_user.values())
    assert stats["users"] == len(per_user)
    assert stats["items"] == len({i for _, i in distinct})
    pair_w = Counter()
    by_user: dict[str, list[str]] = {}
    for u, i in sorted(distinct):
        by_user.setdefault(u, []).append(i)
    for its in by_user.values():
        pair_w.update(itertools.combinations(sorted(its), 2))
    assert stats["pairs_kept"] == sum(1 for w in pair_w.values() if w >= min_copurchase)
    assert stats["nodes"] == nodes.height and stats["edges"] == edges.height


def test_k_core_function_matches_networkx():
    rng = np.random.default_rng(1)
    g = nx.gnm_random_graph(80, 400, seed=3)
    edges = pl.DataFrame(
        {
            "src_asin": [f"n{min(a, b):02d}" for a, b in g.edges()],
            "dst_asin": [f"n{max(a, b):02d}" for a, b in g.edges()],
            "weight": rng.integers(3, 9, g.number_of_edges()),
        },
    )
    for k in (1, 5, 8, 12):
        core = k_core(edges, k)
        expect = {(f"n{min(a, b):02d}", f"n{max(a, b):02d}") for a, b in nx.k_core(g, k).edges()}
        assert set(core.select(["src_asin", "dst_asin"]).iter_rows()) == expect
        assert core.columns == edges.columns
    assert k_core(edges, 1000).height == 0


def test_max_items_per_user(tmp_path):
    purchases = _random_purchases(3) + [("bot", f"i{i:03d}") for i in range(30)]
    work = _work_from(purchases, tmp_path)
    full = build_graph(work, GraphParams(k=1))
    stats = build_graph(work, GraphParams(k=1, max_items_per_user=20))
    assert stats["max_items_users_removed"] >= 1
    n_bot = len({i for u, i in purchases if u == "bot"})
    assert stats["max_items_pair_instances_removed"] >= n_bot * (n_bot - 1) // 2
    assert (
        stats["pair_instances"]
        == full["pair_instances"] - stats["max_items_pair_instances_removed"]
    )


def test_bipartite_copy_equals_the_table_from_baskets(sample_dir, tmp_path):
    """bipartite.parquet, copied from the ingested purchases, holds the rows, in the order,
    that rebuilding it from the baskets gives (the way it was written before)."""
    ingest_dumps([str(sample_dir / "Demo.jsonl.gz")], None, tmp_path)
    build_graph(tmp_path, GraphParams())
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW purchases AS SELECT user_id, asin FROM '{tmp_path / 'reviews.parquet'}'"
    )
    execute_script(con, "bipartite")
    rebuilt = con.execute(
        """SELECT b.uid AS user_id, i.asin FROM (SELECT uid, unnest(items) AS iid FROM baskets) b
           JOIN item_ids i USING (iid) ORDER BY i.asin, user_id"""
    ).fetchall()
    written = con.execute(f"SELECT * FROM '{tmp_path / 'bipartite.parquet'}'").fetchall()
    assert len(written) > 1000 and written == rebuilt


def test_cli_graph_contract(sample_dir, tmp_path, capsys):
    out = tmp_path / "g"
    rc = main(
        [
            "graph",
            "--reviews",
            str(sample_dir / "Demo.jsonl.gz"),
            "--meta",
            str(sample_dir / "meta_Demo.jsonl.gz"),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    edges = pl.read_parquet(out / "edges.parquet")
    nodes = pl.read_parquet(out / "nodes.parquet")
    assert edges.columns == ["src_asin", "dst_asin", "weight"]
    assert nodes.columns == ["asin", "degree"]
    stats = json.loads((out / "stats.json").read_text())
    for key in [
        "reviews_read",
        "reviews_rejected",
        "duplicates_dropped",
        "users",
        "items",
        "pair_instances",
        "pairs_kept",
        "nodes",
        "edges",
    ]:
        assert key in stats, key
    assert stats["nodes"] == nodes.height > 50 and stats["edges"] == edges.height
    assert (nodes["degree"] >= 5).all() and (edges["weight"] >= 3).all()
    # Items that failed the quality rules never enter the graph.
    rejected = set(pl.read_parquet(out / "item_rejects.parquet")["asin"])
    assert rejected and not rejected & set(nodes["asin"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["edges"] == edges.height


def test_cli_several_review_files_and_errors(raw_dir, tmp_path):
    d = raw_dir / "ooethanoo_2018_5core"
    out = tmp_path / "g"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "graph",
            "--reviews",
            str(d / "All_Beauty_5.json"),
            "--reviews",
            str(d / "AMAZON_FASHION_5.json"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert len(stats["sources"]) == 2
    assert stats["reviews_read"] == sum(
        sum(1 for _ in (d / f).open()) for f in ("All_Beauty_5.json", "AMAZON_FASHION_5.json")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "graph",
            "--reviews",
            str(tmp_path / "nope.json"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "nope.json" in proc.stderr and "Traceback" not in proc.stderr
