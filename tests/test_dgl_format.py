"""The DGL graph file writer/reader in the main environment (no dgl here).

The byte-level golden below was written by real ``dgl.save_graphs`` (dgl 2.1.0, torch 2.2.1)
for the graph built in ``_golden_graph``; tests/test_dgl_consumer.py checks our files with
real DGL on every run.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest

from pipeline.publish.dgl_format import (
    HEADER_SIZE,
    WEIGHT_DTYPE,
    DGLFormatError,
    read_dgl_graph,
    write_dgl_graph,
)

# File bytes 0..31 and 4096.. of dgl.save_graphs("real.dgl", [g]) for _golden_graph()
# (bytes 32..4095 are unused; real DGL leaves uninitialised memory there).
REAL_DGL_HEAD = bytes.fromhex("3fa1b446f04f2edd020000000000000002000000000000000100000000000000")
REAL_DGL_BODY = zlib.decompress(
    base64.b64decode(
        "eNoTEGBAAfu9lEz3zY+4uz+LReFfvM1d9Y/3WYUu59xlhMrDaPuFW6Z9cIi7y4AmDqYdGBmYoHw044nWD+NzoOkn"
        "Vx9cQn3hlm8fEvTAHgJhdig97DwM8sjl/4l3WaB8FiINhBnkgMMjMI8yExBnINM+QuYRcg8h+3CbxILDZC4oXVKU"
        "mJkXn5tYnI3PDkYORgYWDBMZGVih7JzEpNQcQo6EaVTA4VR0J6KLs0Hp8tTM9IwSfLYxKSCiANW2BntIrDgAcQMQ"
        "LwDiA0D8wAHd9ng/DBFXATS7BARQ8wcA+tFomw=="
    )
)


def _golden_graph() -> dict:
    # g = dgl.graph(([0,1,2,3,1,2,3,0], [1,2,3,0,0,1,2,3]), num_nodes=4)
    # g.ndata["label"] = tensor([0,1,1,2]); g.ndata["train_mask"] = tensor([1,0,1,0]).bool()
    # g.edata["weight"] = arange(8).float(); real DGL stored the ndata keys in this order:
    return {
        "num_nodes": 4,
        "src": np.array([0, 1, 2, 3, 1, 2, 3, 0]),
        "dst": np.array([1, 2, 3, 0, 0, 1, 2, 3]),
        "ndata": {
            "train_mask": np.array([True, False, True, False]),
            "label": np.array([0, 1, 1, 2], dtype=np.int64),
        },
        "edata": {"weight": np.arange(8, dtype=np.float32)},
    }


def test_bytes_equal_real_dgl(tmp_path):
    g = _golden_graph()
    path = tmp_path / "g.dgl"
    write_dgl_graph(path, g["num_nodes"], g["src"], g["dst"], g["ndata"], g["edata"])
    data = path.read_bytes()
    assert data[:32] == REAL_DGL_HEAD
    assert data[32:HEADER_SIZE] == bytes(HEADER_SIZE - 32)  # ours: zeros
    assert data[HEADER_SIZE:] == REAL_DGL_BODY


def test_reads_real_dgl_file(tmp_path):
    path = tmp_path / "real.dgl"
    path.write_bytes(REAL_DGL_HEAD + b"\xab" * (HEADER_SIZE - 32) + REAL_DGL_BODY)
    g = read_dgl_graph(path)
    want = _golden_graph()
    assert g["num_nodes"] == 4
    assert np.array_equal(g["src"], want["src"]) and np.array_equal(g["dst"], want["dst"])
    assert list(g["ndata"]) == ["train_mask", "label"]
    assert g["ndata"]["train_mask"].dtype == np.uint8  # bool is stored as uint8
    assert np.array_equal(g["ndata"]["train_mask"], [1, 0, 1, 0])
    assert g["ndata"]["label"].dtype == np.int64
    assert g["edata"]["weight"].dtype == np.float32
    assert np.array_equal(g["edata"]["weight"], np.arange(8))
    assert g["ntypes"] == ["_N"] and g["etypes"] == ["_E"] and g["labels"] == {}


def test_round_trip_dtypes_and_shapes(tmp_path):
    rng = np.random.default_rng(1)
    n, e = 50, 300
    src = rng.integers(0, n, e)
    dst = rng.integers(0, n, e)
    ndata = {
        "label": rng.integers(0, 5, n).astype(np.int64),
        "feat": rng.standard_normal((n, 3, 2)).astype(np.float64),
        "small": rng.integers(-100, 100, n).astype(np.int8),
        "half": rng.standard_normal(n).astype(np.float16),
        "test_mask": rng.random(n) < 0.3,
    }
    edata = {
        "weight": rng.integers(3, 100, e).astype(WEIGHT_DTYPE),
        "count": rng.integers(0, 2**40, e).astype(np.uint64),
    }
    path = tmp_path / "g.dgl"
    write_dgl_graph(path, n, src, dst, ndata, edata)
    g = read_dgl_graph(path)
    assert g["num_nodes"] == n
    assert np.array_equal(g["src"], src) and np.array_equal(g["dst"], dst)
    assert list(g["ndata"]) == list(ndata) and list(g["edata"]) == list(edata)
    for k, v in ndata.items():
        want = v.astype(np.uint8) if v.dtype == np.bool_ else v
        assert g["ndata"][k].dtype == want.dtype and np.array_equal(g["ndata"][k], want), k
    for k, v in edata.items():
        assert g["edata"][k].dtype == v.dtype and np.array_equal(g["edata"][k], v), k


def test_deterministic_and_empty_graph(tmp_path):
    g = _golden_graph()
    a, b = tmp_path / "a.dgl", tmp_path / "b.dgl"
    for p in (a, b):
        write_dgl_graph(p, g["num_nodes"], g["src"], g["dst"], g["ndata"], g["edata"])
    assert a.read_bytes() == b.read_bytes()
    assert oct(a.stat().st_mode & 0o777) == "0o644"

    empty = tmp_path / "empty.dgl"
    write_dgl_graph(empty, 3, np.array([], dtype=np.int64), np.array([], dtype=np.int64), {}, {})
    r = read_dgl_graph(empty)
    assert r["num_nodes"] == 3 and r["src"].size == 0 and r["ndata"] == {} and r["edata"] == {}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"src": np.array([0, 5]), "dst": np.array([1, 2])}, "outside"),
        ({"src": np.array([0, -1]), "dst": np.array([1, 2])}, "outside"),
        ({"src": np.array([0, 1]), "dst": np.array([1])}, "equal length"),
        ({"src": np.array([0.0, 1.0]), "dst": np.array([1, 2])}, "integer"),
        ({"ndata": {"label": np.arange(3)}}, "expected 4 rows"),
        ({"edata": {"weight": np.arange(3)}}, "expected 2 rows"),
        ({"ndata": {"name": np.array(["a", "b", "c", "d"])}}, "cannot be stored"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(tmp_path, kwargs, message):
    args = {"src": np.array([0, 1]), "dst": np.array([1, 2]), "ndata": {}, "edata": {}}
    args.update(kwargs)
    path = tmp_path / "g.dgl"
    with pytest.raises(DGLFormatError, match=message):
        write_dgl_graph(path, 4, args["src"], args["dst"], args["ndata"], args["edata"])
    assert list(tmp_path.iterdir()) == []


def test_corrupt_files_are_refused(tmp_path):
    g = _golden_graph()
    path = tmp_path / "g.dgl"
    write_dgl_graph(path, g["num_nodes"], g["src"], g["dst"], g["ndata"], g["edata"])
    data = path.read_bytes()
    (tmp_path / "trunc.dgl").write_bytes(data[:-40])
    with pytest.raises(DGLFormatError, match="truncated"):
        read_dgl_graph(tmp_path / "trunc.dgl")
    (tmp_path / "magic.dgl").write_bytes(struct.pack("<Q", 1234) + data[8:])
    with pytest.raises(DGLFormatError, match="magic"):
        read_dgl_graph(tmp_path / "magic.dgl")
    (tmp_path / "short.dgl").write_bytes(data[:100])
    with pytest.raises(DGLFormatError, match="truncated"):
        read_dgl_graph(tmp_path / "short.dgl")
