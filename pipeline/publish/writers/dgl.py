"""``dgl_graph.dgl``: both directions, edge i + E is the reverse of edge i."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipeline.publish.dgl_format import WEIGHT_DTYPE, write_dgl_graph

FILE = "dgl_graph.dgl"


def write_dgl(dest: Path, n_nodes: int, edges: pl.DataFrame, ndata: dict[str, np.ndarray]) -> None:
    """``edges`` as published (src, dst, weight [, relation_id]); edata ``weight`` (float32)
    and ``relation_id`` when every edge has one; ``ndata`` as given (label, masks)."""
    src = edges["src"].to_numpy().astype(np.int64)
    dst = edges["dst"].to_numpy().astype(np.int64)
    weight = edges["weight"].to_numpy().astype(WEIGHT_DTYPE)
    edata: dict[str, np.ndarray] = {"weight": np.concatenate([weight, weight])}
    if "relation_id" in edges.columns and edges["relation_id"].null_count() == 0:
        rel = edges["relation_id"].to_numpy().astype(np.int64)
        edata["relation_id"] = np.concatenate([rel, rel])
    write_dgl_graph(
        dest / FILE,
        n_nodes,
        np.concatenate([src, dst]),
        np.concatenate([dst, src]),
        ndata=ndata,
        edata=edata,
    )
