"""Run inside a consumer environment (tests/consumer_envs.py), never imported by the suite.

    python consumer_check.py hf|graph SOURCE CACHE EXPECTED.npz

Loads the category with the installed ``acmmg`` (not this checkout's), runs the adapters of
the mode, checks them against the fixture's arrays and prints a JSON summary as the last line.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(mode: str, source: str, cache: str, expected: str) -> dict:
    want = np.load(expected, allow_pickle=False)
    t0 = time.perf_counter()
    import acmmg

    import_s = time.perf_counter() - t0
    cat = acmmg.load_category(source, cache_dir=cache)
    out: dict = {"acmmg": acmmg.__file__, "import_s": import_s, "nodes": cat.num_nodes}
    split = want["split"]
    if mode == "hf":
        out["torch_loaded"] = "torch" in sys.modules
        df = cat.nodes.to_pandas()
        assert df["asin"].tolist() == want["asins"].tolist()
        ds = cat.to_hf(image=True)
        assert list(ds) == ["train", "validation", "test"], list(ds)
        for name, hf in (("train", "train"), ("val", "validation"), ("test", "test")):
            assert ds[hf]["asin"] == want["asins"][split == name].tolist()
            assert ds[hf]["class"] == want["classes"][split == name].tolist()
        assert ds["train"].features["class"].names == ["Speakers", "Headphones", "Cables"]
        img = ds["test"][0]["image"]
        assert img.size == (16, 16), img.size
        assert "image" not in cat.to_hf()["train"].column_names
        try:
            cat.to_pyg()
        except acmmg.UserError as e:
            assert "acmmg-data[pyg]" in str(e), e
        else:
            raise AssertionError("to_pyg without torch_geometric did not fail clearly")
        out["hf_rows"] = {k: v.num_rows for k, v in ds.items()}
    else:
        import dgl
        import torch

        data = cat.to_pyg("combined")
        data.validate(raise_on_error=True)
        src = np.concatenate([want["pairs"][:, 0], want["pairs"][:, 1]])
        dst = np.concatenate([want["pairs"][:, 1], want["pairs"][:, 0]])
        assert np.array_equal(data.edge_index.numpy(), np.stack([src, dst]))
        assert np.array_equal(data.x.numpy(), want["combined"])
        assert np.array_equal(data.y.numpy(), want["classes"])
        assert np.array_equal(data.edge_weight.numpy(), np.concatenate([want["weight"]] * 2))
        for name in ("train", "val", "test"):
            assert np.array_equal(getattr(data, f"{name}_mask").numpy(), split == name)
        g = cat.to_dgl("combined")
        (ref,), _ = dgl.load_graphs(str(cat.root / "dgl_graph.dgl"))  # the published graph
        for a, b in zip(g.edges(), ref.edges()):
            assert torch.equal(a, b)
        assert torch.equal(g.edata["weight"], ref.edata["weight"])
        for k in ("label", "train_mask", "val_mask", "test_mask"):
            assert torch.equal(g.ndata[k].to(ref.ndata[k].dtype), ref.ndata[k]), k
        assert g.ndata["feat"].shape == data.x.shape
        out.update(pyg_edges=int(data.num_edges), dgl_edges=int(g.num_edges()))
    out["ok"] = True
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
