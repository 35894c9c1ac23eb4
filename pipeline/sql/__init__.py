"""The named DuckDB queries: the ``.sql`` files of this package, shipped inside the wheel."""

from __future__ import annotations

import functools
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent


@functools.cache
def load_sql(name: str) -> str:
    """Text of ``sql/<name>`` (``.sql`` appended when missing)."""
    if not name.endswith(".sql"):
        name += ".sql"
    return (SQL_DIR / name).read_text()


def render_sql(name: str, **idents: str) -> str:
    """A query with ``{placeholders}`` filled: only for table names and quoted paths that
    DuckDB cannot take as prepared parameters; values always go in as parameters."""
    return load_sql(name).format(**idents)


def quote_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def execute_script(con, name: str, params: dict | None = None) -> None:
    """Run every statement of ``sql/<name>``, each with the parameters it names (DuckDB
    binds prepared parameters only to the last statement of a multi-statement string)."""
    params = params or {}
    for stmt in load_sql(name).split(";\n"):
        if not stmt.strip() or all(ln.strip().startswith("--") for ln in stmt.strip().splitlines()):
            continue
        used = {k: v for k, v in params.items() if f"${k}" in stmt}
        con.execute(stmt, used) if used else con.execute(stmt)
