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
    ids = dict(zip(nodes["asin"].to_list(), nodes["node_id"].to_list(), strict=True))
    src = pl.read_parquet(sessions, columns=["session_id", "locale", "items", "next_item"])
    rows = {"session_id": [], "locale": [], "items": [], "next_item": []}
    for sid, loc, items, nxt in src.iter_rows():
        mapped = [ids.get(a) for a in items or []]
        nxt_id = ids.get(nxt) if nxt is not None else None
        if nxt_id is None and all(m is None for m in mapped):
            continue  # nothing of it is in the graph
        rows["session_id"].append(sid)
        rows["locale"].append(loc)
        rows["items"].append(mapped)
        rows["next_item"].append(nxt_id)
    table = pl.DataFrame(
        rows,
        schema={
            "session_id": pl.String,
            "locale": pl.String,
            "items": pl.List(pl.Int64),
            "next_item": pl.Int64,
        },
    )
    write_parquet(table.to_arrow(), dest / FILE)
    return table.height
