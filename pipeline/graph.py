"""Graph: canonical reviews -> bipartite table -> co-purchase pairs -> k-core (DuckDB, sql/).

The heavy step is the projection: a user with d items makes d(d-1)/2 pair instances (244M on
the 20M benchmark set) and most pairs are seen once or twice. Purchases are grouped into one
sorted basket per user; each basket emits its pairs (i < j) without a self-join, and a window
sorted per item keeps only the pairs that reach ``min_copurchase`` before anything is hashed
(sql/project.sql). DuckDB runs under ``pipeline.db.DEFAULT_MEMORY_LIMIT`` and spills past
it, at about the same speed as without a limit (bench/README.md, "Graph build"). For a
cluster, pipeline/graph_partitions.py runs the same build as user-hash partitions and a sum
merge.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline import workdir
from pipeline.db import connect, count, open_db
from pipeline.errors import UserError
from pipeline.io import atomic_path
from pipeline.params import param
from pipeline.resources import Resources
from pipeline.sql import execute_script, load_sql, quote_literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphParams:
    min_copurchase: int = param(3, "keep item pairs bought by at least this many distinct users")
    k: int = param(5, "k of the k-core")
    max_items_per_user: int | None = param(
        None, "drop users with more than N distinct items", metavar="N"
    )
    usable_items_only: bool | None = param(
        None,
        "restrict purchases to the cleaned items (default: when items_clean.parquet exists)",
        cli=False,
    )

    def __post_init__(self) -> None:
        if self.min_copurchase < 1 or self.k < 1:
            raise UserError("min_copurchase and k must be at least 1")
        if self.max_items_per_user is not None and self.max_items_per_user < 2:
            raise UserError("max_items_per_user must be at least 2")


def pair_instances(con: duckdb.DuckDBPyConnection, table: str = "baskets") -> int:
    """Sum over users of C(d_u, 2): how many (user, pair) rows a naive projection forms."""
    return count(con, f"SELECT sum(len(items) * (len(items) - 1) // 2) FROM {table}")


def prune(con: duckdb.DuckDBPyConnection, min_copurchase: int, partitions: int = 1) -> int:
    """Exact pre-projection pruning, ``baskets`` -> ``kept_baskets`` (part, items); returns
    the pair instances left to form."""
    con.execute(
        load_sql("prune_step"), {"min_copurchase": min_copurchase, "partitions": partitions}
    )
    return pair_instances(con, "kept_baskets")


def project(con: duckdb.DuckDBPyConnection, min_copurchase: int) -> int:
    """``kept_baskets`` -> ``pairs`` (i, j, w) with w >= min_copurchase; returns the pair count."""
    execute_script(con, "pair_instances")
    con.execute(load_sql("project"), {"min_copurchase": min_copurchase})
    return count(con, "SELECT count(*) FROM pairs")


def peel(con: duckdb.DuckDBPyConnection, k: int) -> int:
    """Reduce table ``core`` (i, j, w) to its k-core in place; returns the rounds run."""
    rounds = 0
    while True:
        con.execute(load_sql("kcore_degrees"), {"k": k})
        if count(con, "SELECT count(*) FROM low") == 0:
            return rounds
        con.execute(load_sql("kcore_peel"))
        rounds += 1


def k_core(edges: pl.DataFrame, k: int) -> pl.DataFrame:
    """The k-core of an undirected edge list (src_asin, dst_asin, weight), same columns.

    Pure: the input is not modified; the output keeps the input's row order.
    """
    con = connect()  # pipeline.db: ACMMG_DUCKDB_MEMORY / _TEMP apply here too
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


def purchases_view(
    con: duckdb.DuckDBPyConnection, work: Path, usable_items_only: bool | None = None
) -> dict:
    """View ``purchases`` (user_id, asin) over ``reviews.parquet``, restricted to the items of
    ``items_clean.parquet`` when ``usable_items_only`` (default: when that file exists)."""
    reviews = quote_literal(str(work / workdir.REVIEWS))
    clean = work / workdir.ITEMS_CLEAN
    if usable_items_only is None:
        usable_items_only = clean.exists()
    if not usable_items_only:
        con.execute(
            f"CREATE TEMP VIEW purchases AS SELECT user_id, asin FROM read_parquet({reviews})"
        )
        return {}
    usable = f"(SELECT asin FROM read_parquet({quote_literal(str(clean))}))"
    con.execute(
        f"CREATE TEMP VIEW purchases AS SELECT user_id, asin FROM read_parquet({reviews}) "
        f"WHERE asin IN {usable}"
    )
    return {
        "purchases_of_unusable_items": count(
            con, f"SELECT count(*) FROM read_parquet({reviews}) WHERE asin NOT IN {usable}"
        )
    }


def build_graph(work: Path, p: GraphParams = GraphParams(), res: Resources = Resources()) -> dict:
    """``reviews.parquet`` (+ ``items_clean.parquet``) -> bipartite, edges, nodes; stats.

    Purchases are restricted to the items that passed the quality rules (``items_clean``,
    when it exists), so dropped items never enter the graph.
    """
    work = Path(work)
    workdir.require(work / workdir.REVIEWS, "reviews (run the ingest stage)")
    con = open_db(work, res)
    bar = _stage_bar(res.progress, ["bipartite", "prune", "project", "k-core", "write"])
    stats = purchases_view(con, work, p.usable_items_only)
    stats.update(graph_core(con, p.min_copurchase, p.k, p.max_items_per_user, bar, work))
    write_graph(con, work, stats, p.min_copurchase, p.k)
    _advance(bar)
    if bar is not None:
        bar.close()
    return stats


def write_graph(
    con: duckdb.DuckDBPyConnection, work: Path, stats: dict, min_copurchase: int, k: int
) -> None:
    """Table ``core`` -> edges.parquet and nodes.parquet; ``stats`` completed with the
    parameters."""
    stats["min_copurchase"] = min_copurchase
    stats["k"] = k
    _write_graph(con, work)
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


def graph_core(
    con: duckdb.DuckDBPyConnection,
    min_copurchase: int,
    k: int,
    max_items_per_user: int | None = None,
    bar=None,
    work: Path | None = None,
    timings: dict | None = None,
) -> dict:
    """The graph build proper, from a ``purchases`` (user_id, asin) view to table ``core``.

    Baskets, optional heavy-user cut, exact pruning, projection, k-core. Writes
    ``bipartite.parquet`` when ``work`` is given. The benchmark times exactly this; pass
    ``timings`` (a dict) to get the seconds of each step (kept out of the stats, which must
    not change from run to run).
    """
    clock = _Clock(timings)
    stats = prepare(con, min_copurchase, max_items_per_user, work, clock, bar)
    stats["pairs_kept"] = project(con, min_copurchase)
    clock.lap("project")
    _advance(bar)
    stats.update(finish(con, k))
    clock.lap("k-core")
    _advance(bar)
    return stats


def prepare(
    con: duckdb.DuckDBPyConnection,
    min_copurchase: int,
    max_items_per_user: int | None = None,
    work: Path | None = None,
    clock: _Clock | None = None,
    bar=None,
    partitions: int = 1,
) -> dict:
    """``purchases`` -> ``baskets`` and ``item_ids`` -> heavy-user cut -> ``kept_baskets``
    (column ``part`` = hash(user) mod ``partitions``), writing ``bipartite.parquet`` when
    ``work`` is given (``purchases`` then holds each pair once, as reviews.parquet does);
    returns the stats of these steps."""
    clock = clock or _Clock(None)
    stats: dict = {}
    execute_script(con, "bipartite")
    stats["bipartite_rows"] = count(con, "SELECT sum(len(items)) FROM baskets")
    stats["users"] = count(con, "SELECT count(*) FROM baskets")
    stats["items"] = count(con, "SELECT count(*) FROM item_ids")
    if max_items_per_user:
        before = pair_instances(con)
        execute_script(con, "max_items_per_user", {"max_items": max_items_per_user})
        stats["max_items_users_removed"] = count(con, "SELECT count(*) FROM heavy_users")
        stats["max_items_rows_removed"] = count(con, "SELECT coalesce(sum(d), 0) FROM heavy_users")
        stats["pair_instances"] = pair_instances(con)
        stats["max_items_pair_instances_removed"] = before - stats["pair_instances"]
    else:
        stats["pair_instances"] = pair_instances(con)
    clock.lap("baskets")
    if work is not None:
        # Without the heavy-user cut the table is ``purchases`` itself (distinct pairs, as
        # ingest writes reviews.parquet): copied, not rebuilt from the baskets (4x faster).
        rows = (
            "SELECT b.uid AS user_id, i.asin FROM (SELECT uid, unnest(items) AS iid FROM baskets) b"
            " JOIN item_ids i USING (iid)"
            if max_items_per_user
            else "SELECT user_id, asin FROM purchases"
        )
        with atomic_path(work / workdir.BIPARTITE) as tmp:
            con.execute(
                f"COPY ({rows} ORDER BY asin, user_id) TO {quote_literal(str(tmp))} "
                "(FORMAT parquet)"
            )
        clock.lap("write bipartite")
    _advance(bar)
    stats["pair_instances_after_prune"] = prune(con, min_copurchase, partitions)
    clock.lap("prune")
    _advance(bar)
    return stats


def finish(con: duckdb.DuckDBPyConnection, k: int) -> dict:
    """``pairs`` -> table ``core``, its k-core; returns rounds, edges and nodes."""
    con.execute("CREATE OR REPLACE TEMP TABLE core AS SELECT * FROM pairs")
    stats = {"kcore_rounds": peel(con, k)}
    stats["edges"] = count(con, "SELECT count(*) FROM core")
    stats["nodes"] = count(
        con, "SELECT count(*) FROM (SELECT i FROM core UNION SELECT j FROM core)"
    )
    return stats


class _Clock:
    """Wall seconds per step into ``timings`` (when given)."""

    def __init__(self, timings: dict | None) -> None:
        self.timings, self.t = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.t
        self.t = now


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
