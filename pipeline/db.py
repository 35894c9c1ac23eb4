"""DuckDB connections with the out-of-core settings every stage shares."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline.workdir import DUCKDB_TMP

# The memory_limit of every connection unless an argument, --memory-limit or
# ACMMG_DUCKDB_MEMORY says otherwise. DuckDB's own default is 80% of RAM per connection: the
# Electronics rehearsal's clean and review selection each took 6-12 GB under it (bench/README.md,
# "Whole flow"). Every query here spills past the limit (the graph's at about the same speed,
# bench/README.md, "Graph build").
DEFAULT_MEMORY_LIMIT = "2GB"


def connect(
    memory_limit: str | None = None,
    temp_directory: str | os.PathLike | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to ``temp_directory`` past ``memory_limit``.

    Defaults come from ACMMG_DUCKDB_MEMORY / ACMMG_DUCKDB_TEMP / ACMMG_DUCKDB_THREADS; the
    memory limit then falls back to ``DEFAULT_MEMORY_LIMIT``, the temp directory to DuckDB's
    own (``.tmp`` in the working directory).
    Insertion order is not preserved: every query that needs an order says ORDER BY.
    """
    con = duckdb.connect()
    memory_limit = memory_limit or os.environ.get("ACMMG_DUCKDB_MEMORY") or DEFAULT_MEMORY_LIMIT
    temp_directory = temp_directory or os.environ.get("ACMMG_DUCKDB_TEMP")
    threads = threads or int(os.environ.get("ACMMG_DUCKDB_THREADS", "0")) or None
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_directory:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        con.execute("SET temp_directory = $t", {"t": str(temp_directory)})
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def settings(work: Path, res=None) -> dict:
    """``connect``'s arguments for a stage: ``res`` (``pipeline.resources.Resources``) first,
    then what ``connect`` defaults to; spills under ``work/.duckdb_tmp`` unless told otherwise."""
    temp = getattr(res, "temp_directory", None) or os.environ.get("ACMMG_DUCKDB_TEMP")
    return {
        "memory_limit": getattr(res, "memory_limit", None),
        "temp_directory": temp or Path(work) / DUCKDB_TMP,
        "threads": getattr(res, "threads", None),
    }


def open_db(work: Path, res=None) -> duckdb.DuckDBPyConnection:
    """A stage's DuckDB (``settings``)."""
    return connect(**settings(work, res))


def count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The integer a one-value query returns (0 for NULL, e.g. the sum over no rows)."""
    return int(con.execute(sql).fetchall()[0][0] or 0)
