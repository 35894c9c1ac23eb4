"""A category as the graph and dataset objects of other libraries (each an optional dependency).

- ``to_pyg``: ``torch_geometric.data.Data`` with ``x`` (an embedding), ``edge_index`` (both
  directions: every (src, dst), then every (dst, src), as in dgl_graph.dgl), ``edge_weight``
  (float32 co-purchase counts), ``y`` and ``train_mask`` / ``val_mask`` / ``test_mask``;
- ``to_dgl``: the same graph as a ``dgl.DGLGraph`` (ndata ``feat``, ``label``, masks; edata
  ``weight``), built from the parquet files, so it needs no dgl_graph.dgl;
- ``to_hf``: a ``datasets.DatasetDict`` with ``train`` / ``validation`` / ``test`` node rows,
  ``class`` as a ``ClassLabel`` with the class names, and an ``image`` column when asked.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from acmmg.errors import UserError

if TYPE_CHECKING:
    from acmmg.category import Category

HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def _need(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(
            f"this needs {module.split('.')[0]} ({e}); install it, e.g. pip install "
            f"'acmmg-data[{extra}]'"
        ) from e


def _graph_tensors(cat: Category, embedding: str | None) -> dict[str, Any]:
    import torch

    src, dst, weight = cat.directed_edges()
    out = {
        "src": torch.from_numpy(src),
        "dst": torch.from_numpy(dst),
        "weight": torch.from_numpy(weight),
        "y": torch.from_numpy(cat.labels),
        **{f"{k}_mask": torch.from_numpy(v) for k, v in cat.masks.items()},
    }
    if embedding is not None:
        out["x"] = cat.embeddings(embedding, tensor=True)
    return out


def to_pyg(cat: Category, embedding: str | None = "combined") -> Any:
    """``torch_geometric.data.Data`` of the category; ``x`` from ``embedding`` (None: no x)."""
    pyg = _need("torch_geometric.data", "pyg")
    import torch

    t = _graph_tensors(cat, embedding)
    data = pyg.Data(
        edge_index=torch.stack([t["src"], t["dst"]]),
        edge_weight=t["weight"],
        y=t["y"],
        train_mask=t["train_mask"],
        val_mask=t["val_mask"],
        test_mask=t["test_mask"],
        num_nodes=cat.num_nodes,
    )
    if "x" in t:
        data.x = t["x"]
    return data


def to_dgl(cat: Category, embedding: str | None = "combined") -> Any:
    """``dgl.DGLGraph`` of the category; ndata ``feat`` from ``embedding`` (None: none)."""
    dgl = _need("dgl", "dgl")
    t = _graph_tensors(cat, embedding)
    g = dgl.graph((t["src"], t["dst"]), num_nodes=cat.num_nodes)
    g.edata["weight"] = t["weight"]
    g.ndata["label"] = t["y"]
    for k in ("train_mask", "val_mask", "test_mask"):
        g.ndata[k] = t[k]
    if "x" in t:
        g.ndata["feat"] = t["x"]
    return g


def hf_features(class_names: list[str], image: bool = False) -> Any:
    """The ``datasets.Features`` of the node rows (``class`` a ``ClassLabel``)."""
    ds = _need("datasets", "hf")
    strings = (
        ds.List(ds.Value("string")) if hasattr(ds, "List") else ds.Sequence(ds.Value("string"))
    )
    features = {
        "node_id": ds.Value("int64"),
        "asin": ds.Value("string"),
        "title": ds.Value("string"),
        "desc": strings,
        "class": ds.ClassLabel(names=class_names),
        "reviews": strings,
    }
    if image:
        features["image"] = ds.Image()
    return ds.Features(features)


def to_hf(cat: Category, image: bool = False) -> Any:
    """``datasets.DatasetDict`` with train / validation / test node rows.

    ``image=True`` adds an ``image`` column: paths into the extracted ``images/`` (decoded by
    ``datasets`` when read), or the bytes from images.tar where it is not extracted.
    """
    ds = _need("datasets", "hf")
    import pyarrow as pa
    from datasets.table import InMemoryTable

    features = hf_features(cat.class_names, image)
    nodes = cat.nodes.select([n for n in features if n != "image"])
    if image:
        extracted = (cat.root / "images").is_dir()
        col = []
        for asin in nodes["asin"].to_pylist():
            p = cat.root / "images" / f"{asin}.jpg"
            if extracted and p.is_file():
                col.append({"bytes": None, "path": str(p)})
            else:
                col.append({"bytes": cat.image_bytes(asin), "path": None})
        nodes = nodes.append_column("image", pa.array(col))
    nodes = nodes.cast(features.arrow_schema)
    out = {}
    for split, hf_name in HF_SPLITS.items():
        rows = np.flatnonzero(cat.masks[split])
        table = InMemoryTable(nodes.take(rows))
        out[hf_name] = ds.Dataset(
            table, info=ds.DatasetInfo(features=features), split=ds.NamedSplit(hf_name)
        )
    return ds.DatasetDict(out)
