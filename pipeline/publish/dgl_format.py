"""Write and read ``dgl_graph.dgl`` (DGL's ``save_graphs`` format, file version 2) without dgl.

Why not import dgl: its last release (2.1.0 on the registry) is built for torch <= 2.2.1 and
upstream stopped releasing, while this product runs current torch. The format is small and
stable (identical in dgl 0.5 .. 2.x), so it is written here with numpy + struct and proven in
CI against real DGL (tools/dgl_consumer_check.py in the pinned consumer environment, see
tests/test_dgl_consumer.py). Byte layout: /work/shared/notes/dgl-format.md, summarised here:

- all integers little-endian, no padding; String = u64 length + UTF-8; vector = u64 count + items
- header (4096 bytes): magic, version 2, kind 2 (heterograph), number of graphs, zero padding;
  then the offset of graph 0, the (empty) graph labels, one HeteroGraphData, and a trailer
  holding the graph offsets again
- one homogeneous graph: node type "_N", edge type "_E", stored in COO only (as
  ``dgl.save_graphs`` does by default; DGL builds CSR/CSC lazily on load). Edge ids are the
  positions in ``src``/``dst`` (the COO "data" array is null), so ``edata[k][i]`` belongs to
  edge ``(src[i], dst[i])``.

Published conventions (ACMMG ``dgl_graph.dgl``): the undirected co-purchase graph is stored as
both directions (DGL has no undirected flag), edge ``i`` and its reverse carry the same
features. ``edata["weight"]`` is the co-purchase count as float32 (``WEIGHT_DTYPE``): GNN layers
(``GraphConv(edge_weight=...)``, ``u_mul_e``) need float edge weights, and float32 holds every
count below 2**24 exactly; the exact int64 count stays in ``edges.parquet``. ``ndata["label"]``
is int64; the masks are bool, stored as uint8 like real DGL (they load as uint8 tensors).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.io import atomic_path

WEIGHT_DTYPE = np.float32
LABEL_DTYPE = np.int64

MAGIC_FILE = 0xDD2E4FF046B4A13F
MAGIC_NDARRAY = 0xDD5E40F096B4A13F
MAGIC_HETEROGRAPH = 0xDD589FBE35224ABF
MAGIC_IMMUTABLE_GRAPH = 0xDD3C5FFE20046ABF
MAGIC_UNITGRAPH = 0xDD2E60F0F6B4A127
MAGIC_COO = 0xDD61FFD305DFF127
MAGIC_CSR = 0xDD6CD31205DFF127
FILE_VERSION = 2
KIND_HETEROGRAPH = 2
HEADER_SIZE = 4096
FMT_COO, FMT_CSR, FMT_CSC = 1, 2, 4
FMT_FLAG = 1 << 32  # DGL ORs this into the format codes it stores
DEVICE_CPU = 1

# DLPack type codes: 0 int, 1 uint, 2 float.
_TYPE_CODE = {"i": 0, "u": 1, "f": 2}
_KIND_OF_CODE = {0: "i", 1: "u", 2: "f"}


class DGLFormatError(ValueError):
    """The bytes are not a DGL graph file this module understands."""


# ----------------------------------------------------------------------------- writing


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def _i64(v: int) -> bytes:
    return struct.pack("<q", v)


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return _u64(len(b)) + b


def _as_storable(name: str, arr: Any) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)  # real DGL stores bool as uint8
    if a.dtype.kind not in _TYPE_CODE:
        raise DGLFormatError(f"feature {name!r}: dtype {a.dtype} cannot be stored in a DGL file")
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))


def _write_ndarray(f: BinaryIO, a: np.ndarray) -> None:
    f.write(_u64(MAGIC_NDARRAY) + _u64(0))
    f.write(struct.pack("<iii", DEVICE_CPU, 0, a.ndim))
    f.write(struct.pack("<BBH", _TYPE_CODE[a.dtype.kind], a.dtype.itemsize * 8, 1))
    f.write(struct.pack(f"<{a.ndim}q", *a.shape))
    f.write(_i64(a.nbytes))
    if a.nbytes:
        f.write(memoryview(a).cast("B"))


_NULL_IDS = np.zeros(0, dtype=np.int64)  # DGL's "null" id array: int64, shape (0,)


def _write_metagraph(f: BinaryIO) -> None:
    # One node type, one edge type: the metagraph is the 1x1 graph with the edge 0 -> 0.
    f.write(_u64(MAGIC_IMMUTABLE_GRAPH) + _u64(MAGIC_CSR) + _i64(1) + _i64(1))
    one = np.array([0, 1], dtype=np.int64)
    zero = np.array([0], dtype=np.int64)
    for a in (one, zero, zero):
        _write_ndarray(f, a)
    f.write(b"\x00")  # sorted


def _write_features(f: BinaryIO, feats: list[tuple[str, np.ndarray]]) -> None:
    f.write(_u64(1))  # one node (or edge) type
    f.write(_u64(len(feats)))
    for name, a in feats:
        f.write(_string(name))
        _write_ndarray(f, a)


def write_dgl_graph(
    path: str | os.PathLike,
    num_nodes: int,
    src: np.ndarray,
    dst: np.ndarray,
    ndata: dict[str, np.ndarray],
    edata: dict[str, np.ndarray],
) -> None:
    """Write one homogeneous graph as ``dgl.save_graphs(path, [g])`` would, atomically.

    ``src``/``dst`` are the stored (directed) edges: for an undirected graph pass both
    directions. ``ndata`` arrays have ``num_nodes`` rows, ``edata`` arrays ``len(src)`` rows;
    they are written in the dict's order. Same inputs give byte-identical files.
    """
    src = np.asarray(src)
    dst = np.asarray(dst)
    if src.ndim != 1 or dst.shape != src.shape:
        raise DGLFormatError(
            f"src and dst must be 1-D of equal length, got {src.shape} {dst.shape}"
        )
    num_nodes = int(num_nodes)
    if num_nodes < 0:
        raise DGLFormatError(f"num_nodes must be >= 0, got {num_nodes}")
    for name, a in (("src", src), ("dst", dst)):
        if a.size and a.dtype.kind not in "iu":
            raise DGLFormatError(f"{name} must hold integer node ids, got {a.dtype}")
        if a.size and (int(a.min()) < 0 or int(a.max()) >= num_nodes):
            raise DGLFormatError(f"{name} holds node ids outside [0, {num_nodes})")
    src = np.ascontiguousarray(src, dtype="<i8")
    dst = np.ascontiguousarray(dst, dtype="<i8")
    nfeats = [(k, _as_storable(k, v)) for k, v in ndata.items()]
    efeats = [(k, _as_storable(k, v)) for k, v in edata.items()]
    for kind, feats, rows in (("ndata", nfeats, num_nodes), ("edata", efeats, len(src))):
        for k, a in feats:
            if a.ndim == 0 or a.shape[0] != rows:
                raise DGLFormatError(f"{kind}[{k!r}] has shape {a.shape}; expected {rows} rows")

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header = _u64(MAGIC_FILE) + _u64(FILE_VERSION) + _u64(KIND_HETEROGRAPH) + _u64(1)
        f.write(header.ljust(HEADER_SIZE, b"\x00"))
        graph_offset = HEADER_SIZE + 8 + 8  # after this offset and the empty label list
        f.write(_u64(graph_offset))
        f.write(_u64(0))  # graph labels: none
        assert f.tell() == graph_offset
        # HeteroGraphData: HeteroGraph, node features, edge features, ntypes, etypes.
        f.write(_u64(MAGIC_HETEROGRAPH))
        _write_metagraph(f)
        f.write(_u64(1))  # one relation graph
        f.write(_u64(MAGIC_UNITGRAPH))
        f.write(_i64(FMT_COO | FMT_FLAG))  # formats saved: COO
        f.write(_i64(FMT_COO | FMT_CSR | FMT_CSC | FMT_FLAG))  # formats allowed: all
        _write_metagraph(f)
        f.write(_u64(MAGIC_COO) + _i64(num_nodes) + _i64(num_nodes))  # num_cols, num_rows
        _write_ndarray(f, src)
        _write_ndarray(f, dst)
        _write_ndarray(f, _NULL_IDS)
        f.write(b"\x00\x00")  # row_sorted, col_sorted: not claimed (as dgl.graph() does)
        f.write(_u64(1) + _i64(num_nodes))  # nodes per node type
        _write_features(f, nfeats)
        _write_features(f, efeats)
        f.write(_u64(1) + _string("_N"))
        f.write(_u64(1) + _string("_E"))
        indptr = _u64(1) + _u64(graph_offset)  # vector<u64> of graph offsets
        f.write(_u64(len(indptr)) + indptr + _u64(len(indptr)))
        os.chmod(f.fileno(), 0o644)  # a published file: readable by all (mkstemp gives 0600)


# ----------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise DGLFormatError(f"truncated DGL file (need {n} bytes at offset {self.pos})")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def i64(self) -> int:
        return struct.unpack("<q", self.take(8))[0]

    def u8(self) -> int:
        return self.take(1)[0]

    def magic(self, want: int, what: str) -> None:
        got = self.u64()
        if got != want:
            raise DGLFormatError(
                f"bad {what} magic {got:#x} at offset {self.pos - 8} (want {want:#x})"
            )

    def string(self) -> str:
        return self.take(self.u64()).decode("utf-8")

    def ndarray(self) -> np.ndarray:
        self.magic(MAGIC_NDARRAY, "NDArray")
        self.u64()  # reserved
        _dev_type, _dev_id, ndim = struct.unpack("<iii", self.take(12))
        code, bits, lanes = struct.unpack("<BBH", self.take(4))
        if code not in _KIND_OF_CODE or lanes != 1 or bits % 8:
            raise DGLFormatError(f"unsupported NDArray dtype code={code} bits={bits} lanes={lanes}")
        shape = struct.unpack(f"<{ndim}q", self.take(8 * ndim)) if ndim else ()
        nbytes = self.i64()
        dtype = np.dtype(f"<{_KIND_OF_CODE[code]}{bits // 8}")
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise DGLFormatError(f"NDArray byte count {nbytes} does not match shape {shape}")
        return np.frombuffer(self.take(nbytes), dtype=dtype).reshape(shape).copy()

    def csr(self) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
        self.magic(MAGIC_CSR, "CSRMatrix")
        cols, rows = self.i64(), self.i64()
        indptr, indices, data = self.ndarray(), self.ndarray(), self.ndarray()
        self.u8()  # sorted
        return rows, cols, indptr, indices, data

    def metagraph(self) -> None:
        self.magic(MAGIC_IMMUTABLE_GRAPH, "metagraph")
        rows, cols, *_ = self.csr()
        if (rows, cols) != (1, 1):
            raise DGLFormatError(
                f"only homogeneous graphs are supported; metagraph has {rows} node types"
            )

    def features(self) -> dict[str, np.ndarray]:
        ntypes = self.u64()
        if ntypes != 1:
            raise DGLFormatError(f"expected one node/edge type in features, got {ntypes}")
        return {self.string(): self.ndarray() for _ in range(self.u64())}


def _edges_from_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    eids = data if data.size else np.arange(len(indices), dtype=np.int64)
    order = np.argsort(eids, kind="stable")
    return np.stack([rows[order], indices[order].astype(np.int64)])


def read_dgl_graph(path: str | os.PathLike) -> dict:
    """Read graph 0 of a DGL graph file (ours or real DGL's) into plain numpy arrays.

    Returns ``{"num_nodes", "src", "dst", "ndata", "edata", "labels"}``; edges are in edge-id
    order. For tests and verification; handles COO, CSR or CSC storage of a homogeneous graph.
    """
    r = _Reader(Path(path).read_bytes())
    if len(r.buf) < HEADER_SIZE:
        raise DGLFormatError(f"{path}: truncated DGL file ({len(r.buf)} bytes)")
    r.magic(MAGIC_FILE, "file")
    version, kind, num_graphs = r.u64(), r.u64(), r.u64()
    if version != FILE_VERSION or kind != KIND_HETEROGRAPH:
        raise DGLFormatError(f"{path}: unsupported DGL file version {version} kind {kind}")
    if num_graphs < 1:
        raise DGLFormatError(f"{path}: the file holds no graph")
    r.pos = HEADER_SIZE
    r.u64()  # offset of graph 0 (we read sequentially)
    labels = {r.string(): r.ndarray() for _ in range(r.u64())}
    r.magic(MAGIC_HETEROGRAPH, "HeteroGraph")
    r.metagraph()
    if (nrel := r.u64()) != 1:
        raise DGLFormatError(f"only homogeneous graphs are supported; {nrel} relation graphs")
    r.magic(MAGIC_UNITGRAPH, "UnitGraph")
    saved = r.i64() & 0xFFFFFFFF
    r.i64()  # allowed formats
    edges = None
    if saved & FMT_COO:
        r.metagraph()
        r.magic(MAGIC_COO, "COOMatrix")
        r.i64(), r.i64()  # num_cols, num_rows
        row, col, data = r.ndarray(), r.ndarray(), r.ndarray()
        r.take(2)  # row_sorted, col_sorted
        if data.size:
            order = np.argsort(data, kind="stable")
            row, col = row[order], col[order]
        edges = np.stack([row.astype(np.int64), col.astype(np.int64)])
    if saved & FMT_CSR:
        r.metagraph()
        _, _, indptr, indices, data = r.csr()
        if edges is None:
            edges = _edges_from_csr(indptr, indices, data)
    if saved & FMT_CSC:
        r.metagraph()
        _, _, indptr, indices, data = r.csr()
        if edges is None:
            edges = _edges_from_csr(indptr, indices, data)[::-1]
    if edges is None:
        raise DGLFormatError(f"{path}: no COO, CSR or CSC matrix stored (formats {saved})")
    nodes_per_type = [r.i64() for _ in range(r.u64())]
    if len(nodes_per_type) != 1:
        raise DGLFormatError(f"only homogeneous graphs are supported; {nodes_per_type}")
    ndata = r.features()
    edata = r.features()
    ntypes = [r.string() for _ in range(r.u64())]
    etypes = [r.string() for _ in range(r.u64())]
    return {
        "num_nodes": nodes_per_type[0],
        "src": edges[0],
        "dst": edges[1],
        "ndata": ndata,
        "edata": edata,
        "labels": labels,
        "ntypes": ntypes,
        "etypes": etypes,
    }
