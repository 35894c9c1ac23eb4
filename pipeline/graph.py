"""Graph: canonical reviews -> bipartite table -> co-purchase pairs -> k-core (DuckDB, sql/).

The heavy step is the projection: a user with d items makes d(d-1)/2 pair instances and
most pairs are seen once or twice. Exact pruning (items with fewer than ``min_copurchase``
buyers, users with fewer than two items) runs first so those instances are never formed;
the aggregation then works on dense integer ids packed into one BIGINT key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import polars as pl

from pipeline import workdir
from pipeline.db import connect
from pipeline.io import atomic_path, update_stats
from pipeline.sql import execute_script, load_sql, quote_literal

log = logging.getLogger(__name__)


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0] or 0)


def pair_instances(con: duckdb.DuckDBPyConnection, table: str = "bp") -> int:
    """Sum over users of C(d_u, 2): how many (user, pair) rows a naive projection forms."""
    return _count(
        con, f"SELECT sum(d * (d - 1) // 2) FROM (SELECT count(*) AS d FROM {table} GROUP BY uid)"
    )


def prune(con: duckdb.DuckDBPyConnection, min_copurchase: int, max_rounds: int = 50) -> int:
    """Exact pre-projection pruning of ``bp`` to its fixpoint; returns the rounds run."""
    rows = _count(con, "SELECT count(*) FROM bp")
    for rnd in range(1, max_rounds + 1):
        con.execute(load_sql("prune_step"), {"min_copurchase": min_copurchase})
        con.execute("DROP TABLE bp; ALTER TABLE bp_next RENAME TO bp")
        now = _count(con, "SELECT count(*) FROM bp")
        if now == rows:
            return rnd
        rows = now
    return max_rounds


def project(con: duckdb.DuckDBPyConnection, min_copurchase: int) -> int:
    """``bp`` -> ``pairs`` (i, j, w) with w >= min_copurchase; returns the pair count."""
    con.execute(load_sql("project"), {"min_copurchase": min_copurchase})
    return _count(con, "SELECT count(*) FROM pairs")


def peel(con: duckdb.DuckDBPyConnection, k: int) -> int:
    """Reduce table ``core`` (i, j, w) to its k-core in place; returns the rounds run."""
    rounds = 0
    while True:
        con.execute(load_sql("kcore_degrees"), {"k": k})
        if _count(con, "SELECT count(*) FROM low") == 0:
            return rounds
        con.execute(load_sql("kcore_peel"))
        rounds += 1


def k_core(edges: pl.DataFrame, k: int) -> pl.DataFrame:
    """The k-core of an undirected edge list (src_asin, dst_asin, weight), same columns.

    Pure: the input is not modified; the output keeps the input's row order.
    """
    con = duckdb.connect()
    indexed = edges.with_row_index("_row")
    con.register("edges_in", indexed.to_arrow())
    con.execute(
        "CREATE TEMP TABLE core AS SELECT src_asin AS i, dst_asin AS j, _row AS w FROM edges_in"
    )
    peel(con, k)
    keep = con.sql("SELECT w AS _row FROM core").pl()
    if keep.height == 0:
        return edges.clear()
    return (
        indexed.join(keep.cast({"_row": indexed.schema["_row"]}), on="_row", how="semi")
        .sort("_row")
        .drop("_row")
    )


def node_table(edges: pl.DataFrame) -> pl.DataFrame:
    """(asin, degree) of every node of an undirected edge list, sorted by asin."""
    ends = pl.concat([edges.select(asin="src_asin"), edges.select(asin="dst_asin")])
    return ends.group_by("asin").agg(degree=pl.len().cast(pl.Int64)).sort("asin")


def build_graph(
    work: Path,
    min_copurchase: int = 3,
    k: int = 5,
    max_items_per_user: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
    usable_items_only: bool | None = None,
    progress: bool = False,
) -> dict:
    """``reviews.parquet`` (+ ``items_clean.parquet``) -> bipartite, edges, nodes; stats.

    ``usable_items_only`` (default: when items_clean.parquet exists) restricts purchases to
    items that passed the quality rules, so dropped items never enter the graph.
    """
    work = Path(work)
    if min_copurchase < 1 or k < 0:
        raise ValueError("min_copurchase must be >= 1 and k >= 0")
    con = connect(memory_limit, temp_directory or work / ".duckdb_tmp", threads)
    reviews = quote_literal(str(work / workdir.REVIEWS))
    clean = work / workdir.ITEMS_CLEAN
    if usable_items_only is None:
        usable_items_only = clean.exists()
    steps = ["bipartite", "prune", "project", "k-core", "write"]
    bar = _stage_bar(progress, steps)
    stats: dict = {}
    if usable_items_only:
        con.execute(
            f"CREATE TEMP VIEW purchases AS SELECT user_id, asin FROM read_parquet({reviews}) "
            f"WHERE asin IN (SELECT asin FROM read_parquet({quote_literal(str(clean))}))"
        )
        stats["purchases_of_unusable_items"] = _count(
            con,
            f"SELECT count(*) FROM read_parquet({reviews}) "
            f"WHERE asin NOT IN (SELECT asin FROM read_parquet({quote_literal(str(clean))}))",
        )
    else:
        con.execute(
            f"CREATE TEMP VIEW purchases AS SELECT user_id, asin FROM read_parquet({reviews})"
        )
    stats.update(graph_core(con, min_copurchase, k, max_items_per_user, bar, work))
    stats["min_copurchase"] = min_copurchase
    stats["k"] = k
    _write_graph(con, work)
    _advance(bar)
    if bar is not None:
        bar.close()
    log.info(
        "graph: %d users, %d items, %d pair instances, %d pairs >= %d, %d-core %d nodes / %d edges",
        stats["users"],
        stats["items"],
        stats["pair_instances"],
        stats["pairs_kept"],
        min_copurchase,
        k,
        stats["nodes"],
        stats["edges"],
    )
    update_stats(work, stats)
    return stats


def graph_core(
    con: duckdb.DuckDBPyConnection,
    min_copurchase: int,
    k: int,
    max_items_per_user: int | None = None,
    bar=None,
    work: Path | None = None,
) -> dict:
    """The graph build proper, from a ``purchases`` (user_id, asin) view to table ``core``.

    Bipartite table, optional heavy-user cut, exact pruning, projection, k-core. Writes
    ``bipartite.parquet`` when ``work`` is given. The benchmark times exactly this.
    """
    stats: dict = {}
    execute_script(con, "bipartite")
    stats["bipartite_rows"] = _count(con, "SELECT count(*) FROM bp")
    stats["users"] = _count(con, "SELECT count(DISTINCT uid) FROM bp")
    stats["items"] = _count(con, "SELECT count(*) FROM item_ids")
    if max_items_per_user:
        before = pair_instances(con)
        execute_script(con, "max_items_per_user", {"max_items": max_items_per_user})
        stats["max_items_users_removed"] = _count(con, "SELECT count(*) FROM heavy_users")
        stats["max_items_rows_removed"] = _count(con, "SELECT coalesce(sum(d), 0) FROM heavy_users")
        stats["pair_instances"] = pair_instances(con)
        stats["max_items_pair_instances_removed"] = before - stats["pair_instances"]
    else:
        stats["pair_instances"] = pair_instances(con)
    if work is not None:
        with atomic_path(work / workdir.BIPARTITE) as tmp:
            con.execute(
                f"""COPY (SELECT bp.uid AS user_id, i.asin FROM bp JOIN item_ids i USING (iid)
                    ORDER BY i.asin, user_id) TO {quote_literal(str(tmp))} (FORMAT parquet)"""
            )
    _advance(bar)
    stats["prune_rounds"] = prune(con, min_copurchase)
    stats["pair_instances_after_prune"] = pair_instances(con)
    _advance(bar)
    stats["pairs_kept"] = project(con, min_copurchase)
    _advance(bar)
    con.execute("CREATE OR REPLACE TEMP TABLE core AS SELECT * FROM pairs")
    stats["kcore_rounds"] = peel(con, k)
    _advance(bar)
    stats["edges"] = _count(con, "SELECT count(*) FROM core")
    stats["nodes"] = _count(
        con, "SELECT count(*) FROM (SELECT i FROM core UNION SELECT j FROM core)"
    )
    return stats


def _write_graph(con: duckdb.DuckDBPyConnection, work: Path) -> None:
    with atomic_path(work / workdir.EDGES) as tmp:
        con.execute(
            f"""COPY (SELECT a.asin AS src_asin, b.asin AS dst_asin, c.w::BIGINT AS weight
                FROM core c JOIN item_ids a ON a.iid = c.i JOIN item_ids b ON b.iid = c.j
                ORDER BY src_asin, dst_asin) TO {quote_literal(str(tmp))} (FORMAT parquet)"""
        )
    with atomic_path(work / workdir.NODES) as tmp:
        con.execute(
            f"""COPY (SELECT it.asin, count(*)::BIGINT AS degree
                FROM (SELECT i AS n FROM core UNION ALL SELECT j AS n FROM core) e
                JOIN item_ids it ON it.iid = e.n GROUP BY it.asin ORDER BY it.asin)
                TO {quote_literal(str(tmp))} (FORMAT parquet)"""
        )


def _stage_bar(progress: bool, steps: list[str]):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=len(steps), desc="graph", unit="stage")


def _advance(bar) -> None:
    if bar is not None:
        bar.update(1)
