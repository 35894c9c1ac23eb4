"""The stage table: generated from the declarations, and docs/architecture.md shows it."""

from __future__ import annotations

from pathlib import Path

from pipeline.stage_table import markdown, rows, with_table
from pipeline.stages import STAGES

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_rows_follow_the_declarations():
    table = rows()
    assert [r["name"] for r in table] == [s.name for s in STAGES]
    by = {r["name"]: r for r in table}
    assert "stats/graph.json" in by["graph"]["outputs"]
    assert "items_clean.parquet" in by["embed"]["inputs"]  # the clean stage ran before it
    assert "final/nodes.parquet" in by["classes"]["inputs"]  # ... and the filter
    assert {p["name"] for p in by["graph"]["params"]} >= {"min_copurchase", "k"}


def test_the_architecture_doc_is_current():
    text = DOC.read_text()
    assert with_table(text) == text, "the stage table is stale: run `make docs`"
    assert markdown() in text
