"""pipeline.db: every DuckDB connection gets a memory limit and a spill directory."""

from __future__ import annotations

import duckdb

from pipeline import db
from pipeline.resources import Resources


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return con.execute(f"SELECT current_setting('{name}')").fetchone()[0]


def _as_duckdb_says(limit: str) -> str:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    return _setting(con, "memory_limit")


def test_a_plain_connection_is_capped_at_the_default(monkeypatch) -> None:
    # DuckDB's own default is 80% of RAM per connection: the rehearsal's clean and review
    # selection took 6-12 GB under it.
    monkeypatch.delenv("ACMMG_DUCKDB_MEMORY", raising=False)
    assert _setting(db.connect(), "memory_limit") == _as_duckdb_says(db.DEFAULT_MEMORY_LIMIT)
    monkeypatch.setenv("ACMMG_DUCKDB_MEMORY", "300MB")
    assert _setting(db.connect(), "memory_limit") == _as_duckdb_says("300MB")
    assert _setting(db.connect("1GB"), "memory_limit") == _as_duckdb_says("1GB")


def test_stage_settings_resources_first_then_environment_then_work(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ACMMG_DUCKDB_TEMP", raising=False)
    assert db.settings(tmp_path) == {
        "memory_limit": None,
        "temp_directory": tmp_path / ".duckdb_tmp",
        "threads": None,
    }
    monkeypatch.setenv("ACMMG_DUCKDB_TEMP", str(tmp_path / "env"))
    assert db.settings(tmp_path)["temp_directory"] == str(tmp_path / "env")
    res = Resources(memory_limit="1GB", temp_directory=str(tmp_path / "res"), threads=1)
    assert db.settings(tmp_path, res) == {
        "memory_limit": "1GB",
        "temp_directory": str(tmp_path / "res"),
        "threads": 1,
    }
    con = db.open_db(tmp_path, res)
    assert _setting(con, "memory_limit") == _as_duckdb_says("1GB")
    assert _setting(con, "temp_directory") == str(tmp_path / "res")
    assert _setting(con, "threads") == 1
