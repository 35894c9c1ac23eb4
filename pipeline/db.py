"""DuckDB connections with the out-of-core settings every stage shares."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline.workdir import DUCKDB_TMP


def connect(
    memory_limit: str | None = None,
    temp_directory: str | os.PathLike | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to ``temp_directory`` past ``memory_limit``.

    Defaults come from ACMMG_DUCKDB_MEMORY / ACMMG_DUCKDB_TEMP / ACMMG_DUCKDB_THREADS.
    Insertion order is not preserved: every query that needs an order says ORDER BY.
    """
    con = duckdb.connect()
    memory_limit = memory_limit or os.environ.get("ACMMG_DUCKDB_MEMORY")
    temp_directory = temp_directory or os.environ.get("ACMMG_DUCKDB_TEMP")
    threads = threads or int(os.environ.get("ACMMG_DUCKDB_THREADS", "0")) or None
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_directory:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        con.execute("SET temp_directory = $t", {"t": str(temp_directory)})
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def open_db(work: Path, res=None, default_memory: str | None = None) -> duckdb.DuckDBPyConnection:
    """A stage's DuckDB: ``res`` (``pipeline.resources.Resources``) first, then the
    ACMMG_DUCKDB_* variables, then ``default_memory``; spills under ``work/.duckdb_tmp``."""
    memory = getattr(res, "memory_limit", None) or os.environ.get("ACMMG_DUCKDB_MEMORY")
    temp = getattr(res, "temp_directory", None) or os.environ.get("ACMMG_DUCKDB_TEMP")
    return connect(
        memory or default_memory,
        temp or Path(work) / DUCKDB_TMP,
        getattr(res, "threads", None),
    )


def count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The integer a one-value query returns (0 for NULL, e.g. the sum over no rows)."""
    return int(con.execute(sql).fetchall()[0][0] or 0)
