"""Standard-task benchmark: edge splits and baselines at Electronics size, side by side.

Every step runs in a fresh subprocess (peak RSS is its own) on a synthetic graph of
Electronics' size (98k nodes, ~2M undirected edges: half power-law Chung-Lu links, half links
inside communities of 100, so 2-hop walks meet triangles as in co-purchase graphs):

- ``splits``: the product, ``pipeline.tasks.edge_splits`` (defaults: 80/10/10, 50
  negatives per val/test positive, half of them 2-hop), at full size and at a tenth;
- ``naive``: the obvious implementation at a tenth of the size (9.8k nodes, ~200k edges):
  scipy's A @ A for the 2-hop candidates and a Python loop per positive drawing from them
  and from uniform nodes against a set of edges. Its time grows with the positives times
  the 2-hop ball and its memory with nnz(A^2), hence only the tenth;
- ``baselines``: ``pipeline.tasks.baselines.task_baselines`` on the full graph's edge splits
  with four 512-d float32 embeddings and 10 classes (30% test nodes);
- ``retrieval-torch`` / ``retrieval-numpy``: i2t + t2i over the 29.4k test nodes by the
  training module (``pipeline.training.metrics.cross_modal_retrieval``, torch) and by
  ``acmmg.Evaluator("retrieval")`` (numpy), the same procedure;
- ``probe-threads``: one logistic-probe fit (20k x 512, 10 classes) with the default BLAS
  thread pools and with ``threadpool_limits(1)`` as the baselines run it.

    python bench/bench_tasks.py                 # everything once
    python bench/bench_tasks.py --steps splits naive --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data" / "bench"
N_NODES, N_EDGES, DIM, CLASSES = 98_000, 2_000_000, 512, 10
STEPS = ("splits", "naive", "baselines", "retrieval-torch", "retrieval-numpy", "probe-threads")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def graph(scale: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The synthetic co-purchase-like graph at ``scale`` of Electronics (seeded)."""
    n, m = int(N_NODES * scale), int(N_EDGES * scale * 1.06)  # ~6% are duplicates
    rng = np.random.default_rng(0)
    w = rng.pareto(2.0, n) + 1.0
    p = w / w.sum()
    half = m // 2
    src = np.concatenate([rng.choice(n, half, p=p), rng.integers(0, n, m - half)])
    dst = np.concatenate(
        [rng.choice(n, half, p=p), (src[half:] // 100) * 100 + rng.integers(0, 100, m - half)]
    )
    dst = np.minimum(dst, n - 1)
    keep = src != dst
    return src[keep], dst[keep], n


def splits_path(scale: float) -> Path:
    return DATA / f"edge_splits_{scale:g}.parquet"


# --- steps, each inside its own process --------------------------------------------------


def run_splits(scale: float) -> dict:
    import pyarrow.parquet as pq

    from pipeline.tasks.edge_splits import edge_split_counts, edge_splits

    src, dst, n = graph(scale)
    t, cpu = time.perf_counter(), time.process_time()
    table = edge_splits(src, dst, n, seed=0)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    DATA.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, splits_path(scale), compression="zstd", row_group_size=1 << 20)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows": table.num_rows,
        "file_mb": splits_path(scale).stat().st_size / 1e6,
        **edge_split_counts(table),
    }


def run_naive(scale: float, negatives: int = 50, hard: int = 25) -> dict:
    """A per-positive Python sampler on scipy's A^2 (same rules, not the same draws)."""
    import scipy.sparse as sp

    src, dst, n = graph(scale)
    t, cpu = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(0)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    edges = np.unique(np.stack([lo, hi], 1), axis=0)
    perm = rng.permutation(len(edges))
    n_train = int(0.8 * len(edges))
    train, held = edges[perm[:n_train]], edges[perm[n_train:]]
    edge_set = {(int(a), int(b)) for a, b in edges}
    a = sp.coo_matrix((np.ones(len(train)), (train[:, 0], train[:, 1])), shape=(n, n))
    a = ((a + a.T) > 0).astype(np.float32).tocsr()
    a2 = (a @ a).tocsr()
    nnz_a2 = int(a2.nnz)
    out = []
    for u, _ in held.tolist():
        ball = a2.indices[a2.indptr[u] : a2.indptr[u + 1]]
        cand = [int(v) for v in ball if v != u and (min(u, v), max(u, v)) not in edge_set]
        picked = (
            set(rng.choice(cand, min(hard, len(cand)), replace=False).tolist()) if cand else set()
        )
        while len(picked) < negatives:
            v = int(rng.integers(n))
            if v != u and (min(u, v), max(u, v)) not in edge_set:
                picked.add(v)
        out.append(sorted(picked))
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "nnz_a2": nnz_a2, "positives": len(out)}


def _embeddings(n: int) -> tuple[dict, np.ndarray, np.ndarray]:
    from pipeline.splits import make_splits, split_labels

    rng = np.random.default_rng(1)
    labels = rng.integers(0, CLASSES, n)
    centers = rng.standard_normal((CLASSES, DIM), dtype=np.float32)
    emb = {}
    for kind in ("image", "title", "description", "combined"):
        x = centers[labels] * np.float32(0.05) + rng.standard_normal((n, DIM), dtype=np.float32)
        emb[kind] = x / np.linalg.norm(x, axis=1, keepdims=True)
    split = np.array(split_labels(*make_splits(n, seed=0)), dtype=object)
    return emb, labels, split


def run_baselines() -> dict:
    """``task_baselines``' three parts, timed one by one (together they are the call)."""
    import pyarrow.parquet as pq

    from pipeline.tasks import baselines as B

    emb, labels, split = _embeddings(N_NODES)
    es = pq.read_table(splits_path(1.0))
    params = B.BaselineParams()
    parts = {
        "node_classification": lambda: B.node_classification(emb, labels, split, params),
        "link_prediction": lambda: B.link_prediction(emb, es),
        "retrieval": lambda: B.retrieval(emb, split, params.retrieval_text),
    }
    t, cpu = time.perf_counter(), time.process_time()
    steps = {}
    for name, fn in parts.items():
        s = time.perf_counter()
        fn()
        steps[name] = round(time.perf_counter() - s, 2)
    return {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - cpu, **steps}


def _test_pair() -> tuple[np.ndarray, np.ndarray]:
    emb, _, split = _embeddings(N_NODES)
    test = split == "test"
    return emb["image"][test], emb["title"][test]


def run_retrieval(kind: str) -> dict:
    img, txt = _test_pair()
    t, cpu = time.perf_counter(), time.process_time()
    if kind == "torch":
        import torch

        from pipeline.training.metrics import cross_modal_retrieval

        out = cross_modal_retrieval(torch.from_numpy(img), torch.from_numpy(txt))
    else:
        from acmmg.evaluator import Evaluator

        out = Evaluator("retrieval").eval({"image": img, "text": txt})
    return {
        "wall_s": time.perf_counter() - t,
        "cpu_s": time.process_time() - cpu,
        "n": len(img),
        "i2t_mrr": out["i2t"]["mrr"],
        "t2i_mrr": out["t2i"]["mrr"],
    }


def run_probe_threads() -> dict:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    emb, labels, _ = _embeddings(N_NODES)
    x, y = emb["combined"][:20_000], labels[:20_000]
    res = {}
    for name, limit in (("default", None), ("one", 1)):
        with threadpool_limits(limit):
            t, cpu = time.perf_counter(), time.process_time()
            m = LogisticRegression(C=10.0, max_iter=100).fit(x, y)
            res[f"{name}_s"] = time.perf_counter() - t
            res[f"{name}_cpu_s"] = time.process_time() - cpu
            res[f"{name}_coef_sha"] = hashlib.sha256(m.coef_.tobytes()).hexdigest()[:12]
    return {**res, "wall_s": res["one_s"], "cpu_s": res["one_cpu_s"]}


def child(step: str, scale: float) -> dict:
    if step == "splits":
        out = run_splits(scale)
    elif step == "naive":
        out = run_naive(scale)
    elif step == "baselines":
        out = run_baselines()
    elif step.startswith("retrieval-"):
        out = run_retrieval(step.split("-")[1])
    else:
        out = run_probe_threads()
    return {**out, "peak_rss_gb": peak_rss_gb()}


# --- driver ----------------------------------------------------------------------------


def run(step: str, scale: float) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--child", step, "--scale", str(scale)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = load
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", choices=STEPS)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.scale)))
        return
    plan = []
    for step in args.steps:
        if step == "splits":
            plan += [("splits", 0.1), ("splits", 1.0)]
        elif step == "naive":
            plan.append(("naive", 0.1))
        else:
            plan.append((step, 1.0))
    results: dict[tuple[str, float], list[dict]] = {}
    for _ in range(args.repeat):  # alternate the steps within each repeat
        for step, scale in plan:
            r = run(step, scale)
            results.setdefault((step, scale), []).append(r)
            print(f"{step} @ {scale:g}: {json.dumps(r, sort_keys=True)}", flush=True)
    print("\n| step | scale | median wall s | median CPU s | peak RSS GB | load |")
    print("|---|---|---|---|---|---|")
    for (step, scale), rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "peak_rss_gb")}
        loads = f"{min(r['load'] for r in rs):.1f}-{max(r['load'] for r in rs):.1f}"
        print(
            f"| {step} | {scale:g} | {med['wall_s']:.2f} | {med['cpu_s']:.2f} | "
            f"{med['peak_rss_gb']:.2f} | {loads} |"
        )
    if ("naive", 0.1) in results and ("splits", 0.1) in results:
        ratio = statistics.median(r["cpu_s"] for r in results[("splits", 0.1)]) / statistics.median(
            r["cpu_s"] for r in results[("naive", 0.1)]
        )
        print(f"\nsplits / naive CPU at 0.1: {ratio:.3f}x")
    if ("probe-threads", 1.0) in results:
        rs = results[("probe-threads", 1.0)]
        ratio = statistics.median(r["one_s"] for r in rs) / statistics.median(
            r["default_s"] for r in rs
        )
        print(f"probe fit, one BLAS thread / default pools wall: {ratio:.3f}x")
    if ("retrieval-numpy", 1.0) in results and ("retrieval-torch", 1.0) in results:
        ratio = statistics.median(
            r["wall_s"] for r in results[("retrieval-numpy", 1.0)]
        ) / statistics.median(r["wall_s"] for r in results[("retrieval-torch", 1.0)])
        print(f"retrieval numpy / torch wall: {ratio:.3f}x")


if __name__ == "__main__":
    main()
