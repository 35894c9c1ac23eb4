"""Check a published ACMMG category folder with real DGL (run inside the consumer venv).

    $(tools/dgl_consumer_env.sh | tail -1) tools/dgl_consumer_check.py FOLDER [--resave DIR]

First the ACMMG card's loading snippet runs (only ``category_path`` is set to FOLDER), as a
researcher would run it, in its safe form: ``torch.load(..., weights_only=True)`` and
``tar.extractall(..., filter="data")``, so a hostile folder can neither run code through a
pickle nor write outside itself through the archive (the seed card's plain calls allow both). Then the loaded graph is compared with the
folder's framework-neutral files: its edges and weights (and relation ids) with
edges.parquet (each undirected edge stored in both directions), its labels with the node
attributes' ``class``, its masks with splits.parquet (when present), and everything with the
manifest's counts and checksums. ``--resave DIR`` writes the graph again with
``dgl.save_graphs`` (default, CSR-only, CSC-only) so the main test suite can check the
product's reader on files real DGL wrote.

Exit status 0 and a JSON summary on success; an AssertionError names what differs.
This file does not import the product: it must run on the consumer's stack (dgl 2.1.0,
torch 2.2.1, numpy 1.26, pandas, pyarrow).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys

os.environ.setdefault("DGLBACKEND", "pytorch")

# The loading snippet of the ACMMG dataset card (seed 000) with its two unsafe calls made safe
# (weights_only=True, filter="data"); the one assignment of category_path is replaced by the
# folder under test.
CARD_SNIPPET = """
import dgl
import pandas as pd
import torch
from PIL import Image
import json
import tarfile
import os
# Extract images from tar archive (if not already extracted)
category_path = "path/to/category"
if not os.path.exists(f"{category_path}/images"):
    with tarfile.open(f"{category_path}/images.tar", "r") as tar:
        tar.extractall(category_path, filter="data")
# Load node attributes
node_attributes = pd.read_parquet(f"{category_path}/node_attributes/node_attributes_0.parquet")
# Load graph
graph = dgl.load_graphs(f"{category_path}/dgl_graph.dgl")[0][0]
# Load embeddings
image_embeds = torch.load(f"{category_path}/embeddings/image_embeds.pt", weights_only=True)
title_embeds = torch.load(f"{category_path}/embeddings/title_embeds.pt", weights_only=True)
# Load category mapping
with open(f"{category_path}/node_categories.json", "r") as f:
    categories = json.load(f)
# Load images
image_path = f"{category_path}/images/{node_attributes.iloc[0]['asin']}.jpg"
image = Image.open(image_path)
"""
PLACEHOLDER = 'category_path = "path/to/category"'


def run_card_snippet(folder: str) -> dict:
    assert CARD_SNIPPET.count(PLACEHOLDER) == 1
    code = CARD_SNIPPET.replace(PLACEHOLDER, f"category_path = {folder!r}")
    ns: dict = {"__name__": "__card__"}
    exec(compile(code, "acmmg-card-snippet", "exec"), ns)
    return ns


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check(folder: str, resave: str | None = None) -> dict:
    import dgl
    import numpy as np
    import pandas as pd
    import torch

    ns = run_card_snippet(folder)
    graph = ns["graph"]
    summary: dict = {"dgl": dgl.__version__, "torch": torch.__version__}

    manifest_path = os.path.join(folder, "manifest.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
    for rel, meta in manifest.get("files", {}).items():
        p = os.path.join(folder, rel)
        assert os.path.getsize(p) == meta["size"], f"{rel}: size differs from the manifest"
        assert sha256_file(p) == meta["sha256"], f"{rel}: sha256 differs from the manifest"

    # Nodes: every node_attributes shard, in node_id order.
    shards = sorted(
        glob.glob(os.path.join(folder, "node_attributes", "node_attributes_*.parquet")),
        key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]),
    )
    attrs = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    n = len(attrs)
    columns = {"asin", "title", "desc", "class", "reviews", "node_id"}
    assert columns <= set(attrs.columns), f"node attributes lack {columns - set(attrs.columns)}"
    assert (attrs["node_id"].to_numpy() == np.arange(n)).all(), "node_id is not 0..N-1 in order"
    assert graph.num_nodes() == n, f"graph has {graph.num_nodes()} nodes, attributes {n}"
    first = ns["node_attributes"]
    assert (first["asin"].to_numpy() == attrs["asin"].to_numpy()[: len(first)]).all()

    # Labels.
    label = graph.ndata["label"]
    assert label.dtype == torch.int64, label.dtype
    assert (label.numpy() == attrs["class"].to_numpy()).all(), "ndata['label'] != class"
    categories = ns["categories"]
    assert {str(c) for c in np.unique(label.numpy())} <= set(categories), "class without a name"

    # Masks: uint8 (DGL's storage of bool), one split per node, equal to splits.parquet.
    masks = {}
    for name in ("train", "val", "test"):
        m = graph.ndata[f"{name}_mask"]
        assert m.dtype in (torch.uint8, torch.bool), f"{name}_mask dtype {m.dtype}"
        masks[name] = m.numpy().astype(bool)
        assert set(np.unique(m.numpy()).tolist()) <= {0, 1}
    total = masks["train"].astype(int) + masks["val"].astype(int) + masks["test"].astype(int)
    assert (total == 1).all(), "every node must be in exactly one of train/val/test"
    splits_path = os.path.join(folder, "splits.parquet")
    if os.path.exists(splits_path):
        splits = pd.read_parquet(splits_path).sort_values("node_id")
        assert (splits["node_id"].to_numpy() == np.arange(n)).all()
        assert (splits["asin"].to_numpy() == attrs["asin"].to_numpy()).all()
        for name, m in masks.items():
            assert ((splits["split"] == name).to_numpy() == m).all(), f"{name}_mask != splits"
    summary["splits"] = {k: int(v.sum()) for k, v in masks.items()}

    # Edges: each edges.parquet row in both directions, with its weight (and relation id).
    edges = pd.read_parquet(os.path.join(folder, "edges.parquet"))
    e = len(edges)
    s, d = edges["src"].to_numpy().astype(np.int64), edges["dst"].to_numpy().astype(np.int64)
    want_cols = [np.concatenate([s, d]), np.concatenate([d, s])]
    gs, gd = (t.numpy() for t in graph.edges())
    got_cols = [gs, gd]
    assert graph.num_edges() == 2 * e, f"graph has {graph.num_edges()} edges, want 2 x {e}"
    edge_features = {"weight": "weight", "relation_id": "relation_id"}
    for feat, col in edge_features.items():
        if feat in graph.edata:
            assert col in edges.columns, f"edata[{feat!r}] has no column in edges.parquet"
            v = edges[col].to_numpy()
            want_cols.append(np.concatenate([v, v]).astype(np.float64))
            got_cols.append(graph.edata[feat].numpy().astype(np.float64))
    assert "weight" in graph.edata, "edata['weight'] missing"
    assert graph.edata["weight"].dtype.is_floating_point, graph.edata["weight"].dtype
    want = np.stack(want_cols, axis=1)
    got = np.stack([c.astype(np.float64) for c in got_cols], axis=1)
    want = want[np.lexsort(want.T[::-1])]
    got = got[np.lexsort(got.T[::-1])]
    assert np.array_equal(want, got), "graph edges/features differ from edges.parquet"
    assert (gs != gd).all(), "self loop in the graph"

    # Embeddings and images.
    for name in ("image_embeds", "title_embeds"):
        t = ns[name]
        assert tuple(t.shape)[0] == n and t.dtype == torch.float32, (name, t.shape, t.dtype)
    for kind in ("description", "combined"):
        p = os.path.join(folder, "embeddings", f"{kind}_embeds.pt")
        if os.path.exists(p):
            assert torch.load(p, weights_only=True).shape[0] == n, kind
    ns["image"].load()
    for asin in attrs["asin"]:
        assert os.path.isfile(os.path.join(folder, "images", f"{asin}.jpg")), asin

    counts = manifest.get("counts", {})
    for key, value in (("nodes", n), ("edges", e), ("directed_edges", 2 * e)):
        if key in counts:
            assert counts[key] == value, f"manifest counts[{key!r}]={counts[key]}, graph {value}"
    for name, m in masks.items():
        if name in counts:
            assert counts[name] == int(m.sum()), f"manifest counts[{name!r}]"

    if resave:  # real DGL files for the product's reader: default (COO), CSR-only, CSC-only
        os.makedirs(resave, exist_ok=True)
        dgl.save_graphs(os.path.join(resave, "default.dgl"), [graph])
        for fmt in ("csr", "csc"):
            dgl.save_graphs(os.path.join(resave, f"{fmt}.dgl"), [graph], formats=[fmt])
    summary.update(
        nodes=n,
        edges=e,
        directed_edges=graph.num_edges(),
        ndata=sorted(graph.ndata),
        edata=sorted(graph.edata),
        ok=True,
    )
    return summary


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--resave", help="directory: also write the graph with dgl.save_graphs")
    args = ap.parse_args(argv)
    print(json.dumps(check(os.path.abspath(args.folder), args.resave), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
