"""``sessions.parquet`` (Amazon-M2 builds): the ordered shopping sessions on node ids.

One row per session with at least one item in the published graph: ``session_id``
(``<file stem>:<row>``), ``locale``, ``items`` (the node id of each prev_item in order, null
where that item is not a node) and ``next_item`` (its node id; null when it is not a node
or the file has none, as the test files), so next-item tasks train on the graph's ids.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.publish.writers.parquet import write_parquet

FILE = "sessions.parquet"


def write_sessions(dest: Path, sessions: Path, nodes: pl.DataFrame) -> int | None:
    """Write ``dest/sessions.parquet`` from ingest's session list (asins) and the nodes
    (asin, node_id); returns the sessions written, None when the build has no sessions."""
    if not sessions.exists():
        return None
    old = nodes["asin"].cast(pl.String)
    new = nodes["node_id"].cast(pl.Int64)

    def node_id(e: pl.Expr) -> pl.Expr:  # asin -> node id, null for an item outside the graph
        return e.replace_strict(old, new, default=None, return_dtype=pl.Int64)

    table = (
        pl.scan_parquet(sessions)
        .select(
            pl.col("session_id").cast(pl.String),
            pl.col("locale").cast(pl.String),
            pl.col("items").list.eval(node_id(pl.element())).alias("items"),
            node_id(pl.col("next_item")).alias("next_item"),
        )
        # keep a session when something of it is in the graph
        .filter(
            pl.col("next_item").is_not_null()
            | (pl.col("items").list.eval(pl.element().is_not_null().any()).list.first())
        )
        .collect()
    )
    write_parquet(table.to_arrow(), dest / FILE)
    return table.height
