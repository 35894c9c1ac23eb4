"""Load a published category folder and sample SLIP-style subgraph mini-batches.

Everything is read from the folder's plain files (node_attributes/*.parquet, edges.parquet,
relations.json, node_categories.json, splits.parquet, images.tar, embeddings/), never from
dgl_graph.dgl, so training needs no DGL.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tarfile
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
from PIL import Image

from pipeline.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TEXT_FIELDS = ("title", "description", "combined")
EMBED_KINDS = ("image", "title", "description", "combined")
# RCML appendix A.2: the relation text of an intra-sample (image, text of one item) pair.
DEFAULT_INTRA_TEXT = "These two items represent the same product. Align their features accordingly."


@dataclass
class CategoryData:
    """One published category: node texts and labels, the undirected graph, relations, splits.

    Node i is row i of every array. Edges are undirected, one row each, ``src < dst``.
    """

    root: Path
    asins: list[str]
    titles: list[str]
    descriptions: list[str]
    labels: np.ndarray  # int64 [N]
    src: np.ndarray  # int64 [E]
    dst: np.ndarray  # int64 [E]
    weight: np.ndarray  # float32 [E]
    relation_id: np.ndarray  # int64 [E], -1 where the edge has no relation
    relation_texts: dict[int, str]
    intra_text: str
    class_names: dict[int, str]
    split: np.ndarray  # object [N] of "train" / "val" / "test"
    split_source: str
    # Every relation of each edge (edges.parquet relation_ids, top first), as CSR: the
    # relations of edge e are relation_all[relation_ptr[e]:relation_ptr[e + 1]]. Folders
    # without relation_ids give each edge its relation_id alone.
    relation_ptr: np.ndarray | None = field(default=None, repr=False)
    relation_all: np.ndarray | None = field(default=None, repr=False)
    _adj: sp.csr_matrix | None = field(default=None, repr=False)
    _rel: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def num_nodes(self) -> int:
        return len(self.asins)

    @property
    def num_classes(self) -> int:
        known = max(self.class_names) + 1 if self.class_names else 0
        return int(max(known, int(self.labels.max()) + 1 if self.num_nodes else 0))

    def nodes(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.split == split).astype(np.int64)

    def texts(self, field: str = "title") -> list[str]:
        if field == "title":
            return self.titles
        if field == "description":
            return self.descriptions
        if field == "combined":  # as pipeline.clip builds the combined embedding's text
            return [f"{t} {d}".strip() for t, d in zip(self.titles, self.descriptions, strict=True)]
        raise ValueError(f"text field must be one of {TEXT_FIELDS}, got {field!r}")

    def edge_relations(self, e: int) -> np.ndarray:
        """Every relation id of edge ``e`` (top first); empty where it has none."""
        if self.relation_ptr is None:
            r = self.relation_id[e]
            return np.array([r] if r >= 0 else [], dtype=np.int64)
        return self.relation_all[self.relation_ptr[e] : self.relation_ptr[e + 1]]

    def adjacency(self) -> sp.csr_matrix:
        """Symmetric 0/1 adjacency (CSR, int8), no self loops."""
        if self._adj is None:
            self._adj = adjacency(self.num_nodes, self.src, self.dst)
        return self._adj

    def relation_matrix(self) -> sp.csr_matrix:
        """Symmetric CSR holding relation_id + 1 per edge; edges without a relation left out."""
        if self._rel is None:
            has = self.relation_id >= 0
            s, d, r = self.src[has], self.dst[has], self.relation_id[has] + 1
            m = sp.coo_matrix(
                (np.concatenate([r, r]), (np.concatenate([s, d]), np.concatenate([d, s]))),
                shape=(self.num_nodes, self.num_nodes),
            )
            self._rel = m.tocsr()
        return self._rel

    def edges_within(self, nodes: np.ndarray) -> np.ndarray:
        """Indices of the edges whose two endpoints are both in ``nodes``."""
        inside = np.zeros(self.num_nodes, dtype=bool)
        inside[nodes] = True
        return np.flatnonzero(inside[self.src] & inside[self.dst])


def adjacency(num_nodes: int, src: np.ndarray, dst: np.ndarray) -> sp.csr_matrix:
    """Symmetric binary CSR adjacency from undirected edge lists (self loops dropped)."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    keep = src != dst
    rows = np.concatenate([src[keep], dst[keep]])
    cols = np.concatenate([dst[keep], src[keep]])
    a = sp.coo_matrix(
        (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(num_nodes, num_nodes)
    )
    a = a.tocsr()
    a.data[:] = 1  # duplicate edges summed to 2 -> back to binary
    a.sort_indices()
    return a


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{path} is missing: not a published category folder ({what})")
    return path


def _load_splits(root: Path, asins: list[str]) -> tuple[np.ndarray, str]:
    n = len(asins)
    path = root / "splits.parquet"
    if path.exists():
        df = pl.read_parquet(path, columns=["node_id", "split"]).sort("node_id")
        ids = df["node_id"].to_numpy()
        if len(ids) != n or not np.array_equal(ids, np.arange(n)):
            raise UserError(f"{path}: node_id must be 0..{n - 1}, one row each")
        split = np.asarray(df["split"].to_list(), dtype=object)
        bad = sorted({s for s in split.tolist() if s not in SPLITS})
        if bad:
            raise UserError(f"{path}: unknown split names {bad}; expected {SPLITS}")
        return split, "splits.parquet"
    # No split file: derive the publisher's seeded split from the manifest's parameters.
    from pipeline.splits import DEFAULT_RATIOS, make_splits, split_labels

    params = {}
    if (root / "manifest.json").exists():
        params = json.loads((root / "manifest.json").read_text()).get("params", {}) or {}
    seed = int(params.get("seed", 0))
    ratios = tuple(params.get("split_ratios", DEFAULT_RATIOS))
    train, val, test = make_splits(asins, seed=seed, ratios=ratios)
    log.warning("%s has no splits.parquet: derived the seeded split (seed %d)", root, seed)
    return np.asarray(split_labels(train, val, test), dtype=object), f"make_splits(seed={seed})"


def _relation_texts(rels: list | dict, path: Path) -> dict[int, str]:
    """Relation id -> text from relations.json's "relations": the relations stage writes a list
    of {"id", "text", ...}; a plain {"<id>": "<text>"} mapping is accepted too."""
    items = rels.items() if isinstance(rels, dict) else ((r.get("id"), r) for r in rels)
    out = {}
    for rid, r in items:
        text = r.get("text") if isinstance(r, dict) else r
        if rid is None or not isinstance(text, str):
            raise UserError(f"{path}: every relation needs an id and a text")
        out[int(rid)] = text
    return out


def _relation_lists(col: pl.Series, known: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """(ptr, flat ids) of a list column of relation ids; ids without a text are dropped."""
    lists = col.cast(pl.List(pl.Int64)).list.drop_nulls()
    lists = lists.list.eval(pl.element().filter(pl.element().is_in(sorted(known))))
    lengths = lists.list.len().fill_null(0).to_numpy()
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = lists.explode().drop_nulls().to_numpy().astype(np.int64)
    return ptr, flat


def load_category(root: str | os.PathLike) -> CategoryData:
    """Read a published category folder (our layout; see DESIGN.md)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    shards = sorted((root / "node_attributes").glob("node_attributes_*.parquet"), key=_natural_key)
    if not shards:
        raise UserError(f"{root}/node_attributes/node_attributes_<k>.parquet: no files found")
    nodes = pl.concat(
        [pl.read_parquet(p, columns=["asin", "title", "desc", "class", "node_id"]) for p in shards]
    ).sort("node_id")
    n = nodes.height
    if not np.array_equal(nodes["node_id"].to_numpy(), np.arange(n)):
        raise UserError(f"{root}/node_attributes: node_id must be 0..{n - 1}, one row each")
    if nodes["class"].null_count():
        raise UserError(
            f"{root}/node_attributes: {nodes['class'].null_count()} nodes have no class"
        )
    asins = [str(a) for a in nodes["asin"].to_list()]
    titles = [(t or "").strip() for t in nodes["title"].to_list()]
    descs = []
    for d in nodes["desc"].to_list():
        if isinstance(d, str):
            descs.append(d.strip())
        else:
            descs.append(" ".join(s.strip() for s in (d or []) if s and s.strip()))

    edges = pl.read_parquet(_require(root / "edges.parquet", "edges"))
    src = edges["src"].to_numpy().astype(np.int64)
    dst = edges["dst"].to_numpy().astype(np.int64)
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise UserError(f"{root}/edges.parquet: node ids outside 0..{n - 1}")
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    if len(src) and len(np.unique(lo * n + hi)) != len(src):
        raise UserError(f"{root}/edges.parquet: an undirected edge appears more than once")
    weight = (
        edges["weight"].cast(pl.Float32).fill_null(1.0).to_numpy()
        if "weight" in edges.columns
        else np.ones(len(src), dtype=np.float32)
    )
    if "relation_id" in edges.columns:
        relation_id = edges["relation_id"].cast(pl.Int64).fill_null(-1).to_numpy()
    else:
        relation_id = np.full(len(src), -1, dtype=np.int64)

    relation_texts: dict[int, str] = {}
    intra_text = DEFAULT_INTRA_TEXT
    rel_path = root / "relations.json"
    if rel_path.exists():
        rel = json.loads(rel_path.read_text())
        intra_text = rel.get("intra_text") or DEFAULT_INTRA_TEXT
        relation_texts = _relation_texts(rel.get("relations", []), rel_path)
    unknown = np.isin(relation_id, list(relation_texts), invert=True) & (relation_id >= 0)
    if unknown.any():
        # SLIP does not need relations; RCML refuses a folder left with none.
        log.warning(
            "%s: %d edges have relation ids without a text in relations.json (e.g. %s); "
            "they are treated as edges without relation",
            root,
            int(unknown.sum()),
            sorted(set(relation_id[unknown].tolist()))[:5],
        )
        relation_id = np.where(unknown, -1, relation_id)

    relation_ptr = relation_all = None
    if "relation_ids" in edges.columns:
        relation_ptr, relation_all = _relation_lists(edges["relation_ids"], set(relation_texts))

    class_names: dict[int, str] = {}
    if (root / "node_categories.json").exists():
        cats = json.loads((root / "node_categories.json").read_text())
        class_names = {int(k): str(v) for k, v in cats.items()}

    split, source = _load_splits(root, asins)
    return CategoryData(
        root=root,
        asins=asins,
        titles=titles,
        descriptions=descs,
        labels=nodes["class"].to_numpy().astype(np.int64),
        src=src,
        dst=dst,
        weight=weight.astype(np.float32),
        relation_id=relation_id.astype(np.int64),
        relation_texts=relation_texts,
        intra_text=intra_text,
        class_names=class_names,
        split=split,
        split_source=source,
        relation_ptr=relation_ptr,
        relation_all=relation_all,
    )


def load_embeddings(root: str | os.PathLike, kind: str) -> torch.Tensor:
    """embeddings/<kind>_embeds.{pt,npy,safetensors} as float32 [N, d]."""
    if kind not in EMBED_KINDS:
        raise ValueError(f"embedding kind must be one of {EMBED_KINDS}, got {kind!r}")
    base = Path(root) / "embeddings" / f"{kind}_embeds"
    if base.with_suffix(".pt").exists():
        t = torch.load(base.with_suffix(".pt"), map_location="cpu", weights_only=True)
        if isinstance(t, dict):  # a state-dict style file: take its one tensor
            t = next(iter(t.values()))
    elif base.with_suffix(".npy").exists():
        t = torch.from_numpy(np.load(base.with_suffix(".npy"), allow_pickle=False))
    elif base.with_suffix(".safetensors").exists():
        from safetensors.torch import load_file

        tensors = load_file(str(base.with_suffix(".safetensors")))
        t = tensors.get("embeddings", next(iter(tensors.values())))
    else:
        raise UserError(f"{base}.pt (or .npy / .safetensors) is missing")
    t = torch.as_tensor(t).float()
    if t.ndim != 2:
        raise UserError(f"{base}: expected a [num_nodes, d] tensor, got shape {tuple(t.shape)}")
    return t


class TarImages:
    """Random access to images.tar members by asin, without extracting the archive.

    The member index (name -> data offset, size) is built once; reads seek into the file.
    Each process opens its own handle, so DataLoader workers can share one instance.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"{self.path} is missing (images.tar)")
        self.index: dict[str, tuple[int, int]] = {}
        with tarfile.open(self.path, "r:") as tar:
            for m in tar:
                if m.isfile():
                    stem = Path(m.name).name.rsplit(".", 1)[0]
                    self.index[stem] = (m.offset_data, m.size)
        self._fh = None
        self._pid = -1

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fh"], state["_pid"] = None, -1
        return state

    def check(self, asins: Sequence[str]) -> None:
        missing = [a for a in asins if a not in self.index]
        if missing:
            raise UserError(f"{self.path}: {len(missing)} nodes have no image, e.g. {missing[:3]}")

    def read_bytes(self, asin: str) -> bytes:
        if self._fh is None or self._pid != os.getpid():
            self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open for the process
            self._pid = os.getpid()
        offset, size = self.index[asin]
        self._fh.seek(offset)
        return self._fh.read(size)

    def image(self, asin: str) -> Image.Image:
        with Image.open(io.BytesIO(self.read_bytes(asin))) as im:
            return im.convert("RGB")


class NodeImageText(torch.utils.data.Dataset):
    """Item i -> (node id, preprocessed image, text). Tokenising happens in the collate."""

    def __init__(self, data: CategoryData, images: TarImages, preprocess, text_field: str):
        self.data = data
        self.images = images
        self.preprocess = preprocess
        self.texts = data.texts(text_field)

    def __len__(self) -> int:
        return self.data.num_nodes

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        return i, self.preprocess(self.images.image(self.data.asins[i])), self.texts[i]


class SubgraphBatchSampler(torch.utils.data.Sampler):
    """SLIP mini-batches: b nodes grown as connected neighbourhoods of random seed nodes.

    Each epoch visits every node of ``nodes`` exactly once. A batch starts at a random unvisited
    seed and is filled breadth-first through the co-purchase graph (restricted to ``nodes``,
    neighbours in random order); when a neighbourhood is exhausted the next seed starts a new
    one in the same batch. Batches therefore carry many edges, as SLIP's structural loss needs.
    The order depends only on (seed, epoch).
    """

    def __init__(
        self,
        adj: sp.csr_matrix,
        nodes: np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        min_batch: int = 2,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.adj = adj.tocsr()
        self.nodes = np.asarray(nodes, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.min_batch = int(min_batch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.nodes)
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest >= self.min_batch else 0)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.nodes) if self.shuffle else self.nodes
        todo = np.zeros(self.adj.shape[0], dtype=bool)
        todo[self.nodes] = True
        indptr, indices = self.adj.indptr, self.adj.indices
        batch: list[int] = []
        queue: deque[int] = deque()
        for start in order:
            if not todo[start]:
                continue
            todo[start] = False
            queue.append(int(start))
            while queue:
                u = queue.popleft()
                batch.append(u)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
                nbrs = indices[indptr[u] : indptr[u + 1]]
                nbrs = nbrs[todo[nbrs]]
                if len(nbrs):
                    if self.shuffle:
                        nbrs = rng.permutation(nbrs)
                    todo[nbrs] = False
                    queue.extend(int(v) for v in nbrs)
        if len(batch) >= self.min_batch:
            yield batch


def batch_adjacency(adj: sp.csr_matrix, nodes: Sequence[int]) -> torch.Tensor:
    """Dense boolean adjacency [b, b] of the subgraph induced by ``nodes`` (in that order)."""
    idx = np.asarray(nodes, dtype=np.int64)
    sub = adj[idx][:, idx].toarray() != 0
    np.fill_diagonal(sub, False)
    return torch.from_numpy(sub)


def batch_relations(rel: sp.csr_matrix, nodes: Sequence[int]) -> torch.Tensor:
    """Dense [b, b] int64 relation_id + 1 of the subgraph induced by ``nodes`` (0: none)."""
    idx = np.asarray(nodes, dtype=np.int64)
    return torch.from_numpy(rel[idx][:, idx].toarray().astype(np.int64))


def positive_mask(adj_b: torch.Tensor, hops: int = 1) -> torch.Tensor:
    """SLIP Eq. 2: M+[i, j] = 1 if dist_Gb(i, j) <= h (shortest path in the batch subgraph),
    and M+[i, i] = 0."""
    if hops < 0:
        raise ValueError("hops must be >= 0")
    b = adj_b.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=adj_b.device)
    a = (adj_b.bool() | adj_b.bool().T) & ~eye
    reach = eye.clone()
    frontier = a.float()
    for _ in range(hops):  # reach after k rounds = nodes within k hops
        new = (reach.float() @ frontier) > 0
        if torch.equal(new | reach, reach):
            break
        reach = reach | new
    return reach & ~eye


def negative_mask(pos: torch.Tensor) -> torch.Tensor:
    """SLIP's M- = 1 - M+ - I."""
    eye = torch.eye(pos.shape[0], dtype=torch.bool, device=pos.device)
    return ~pos.bool() & ~eye
