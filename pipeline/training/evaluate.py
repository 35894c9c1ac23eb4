"""Evaluation of a built run: SLIP cross-modal retrieval (Table 2), RCML relation-guided
retrieval (Hit@5) and relation-type prediction (top-3), the early-stopping score, the mean
loss of a split, and ``evaluate_run`` behind ``acmmg eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.io import write_json
from pipeline.training import metrics as M
from pipeline.training.batches import batches, chunks
from pipeline.training.checkpoint import load_checkpoint
from pipeline.training.config import TrainConfig
from pipeline.training.data import CategoryData, SubgraphBatchSampler
from pipeline.training.plots import plot_hop_similarity
from pipeline.training.rcml import RCMLModel
from pipeline.training.report import rounded
from pipeline.training.run import Run, build_run
from pipeline.training.slip_eval import evaluate_slip, slip_before, slip_test_metrics
from pipeline.training.steps import rcml_step, relation_tokens, slip_step


def relation_queries(
    data: CategoryData, split: str, negatives: int = 20, max_queries: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    """RCML relation-guided retrieval queries inside one split.

    Each edge with a relation whose endpoints are both in the split gives two queries (A -> B
    and B -> A). Negatives: ``negatives`` random split nodes that are neither A, B nor a
    neighbour of A; fewer where the split is too small (padded with -1). Seeded.
    """
    rng = np.random.default_rng(seed)
    nodes = data.nodes(split)
    e = data.edges_within(nodes)
    e = e[data.relation_id[e] >= 0]
    anchor = np.concatenate([data.src[e], data.dst[e]])
    target = np.concatenate([data.dst[e], data.src[e]])
    relation = np.concatenate([data.relation_id[e], data.relation_id[e]])
    if len(anchor) > max_queries:
        keep = np.sort(rng.choice(len(anchor), max_queries, replace=False))
        anchor, target, relation = anchor[keep], target[keep], relation[keep]
    adj = data.adjacency()
    neg = np.full((len(anchor), negatives), -1, dtype=np.int64)
    for q, (a, b) in enumerate(zip(anchor, target, strict=True)):
        banned = set(adj.indices[adj.indptr[a] : adj.indptr[a + 1]].tolist()) | {int(a), int(b)}
        pool = nodes[~np.isin(nodes, list(banned))]
        k = min(negatives, len(pool))
        if k:
            neg[q, :k] = rng.choice(pool, k, replace=False)
    # Relation-type prediction: each such edge once, as (src, dst); as many as queries at most.
    if len(e) > max_queries:
        e = e[np.sort(rng.choice(len(e), max_queries, replace=False))]
    return {
        "anchor": anchor,
        "target": target,
        "relation": relation,
        "negatives": neg,
        "edge_src": data.src[e],
        "edge_dst": data.dst[e],
        "edge_relation": data.relation_id[e],
    }


@torch.no_grad()
def rcml_features(
    run: Run, nodes: np.ndarray, rel_ids: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """z_T and z_I of ``nodes`` under every relation in ``rel_ids``: each [R, n, d], CPU fp16."""
    run.model.eval()
    model: RCMLModel = run.model
    rel = model.relation_embeddings(relation_tokens(run, rel_ids, intra=False))
    intra = torch.zeros(len(rel_ids), dtype=torch.bool, device=run.device)
    zt, zi = [], []
    for batch in batches(run, chunks(nodes, run.cfg.eval_batch_size), train=False):
        with run.autocast():
            feats = model.tokens(batch["images"], batch["tokens"])
            z_t, z_i = model.conditioned(feats, rel, intra)
        # fp16 on the host: R x n x d for a whole test split must stay affordable
        zt.append(z_t.to(torch.float16).cpu())
        zi.append(z_i.to(torch.float16).cpu())
    return torch.cat(zt, dim=1), torch.cat(zi, dim=1)


def evaluate_rcml(run: Run, split: str = "test", max_queries: int | None = None) -> dict:
    data, cfg = run.data, run.cfg
    q = relation_queries(data, split, cfg.negatives, max_queries or cfg.max_eval_queries, cfg.seed)
    if len(q["anchor"]) == 0:
        raise UserError(f"the {split} split has no edge with a relation: nothing to retrieve")
    rel_ids = sorted(data.relation_texts)
    col = {r: k for k, r in enumerate(rel_ids)}
    used = np.unique(
        np.concatenate(
            [q["anchor"], q["target"], q["negatives"].ravel(), q["edge_src"], q["edge_dst"]]
        )
    )
    used = used[used >= 0]
    row = np.full(data.num_nodes, -1, dtype=np.int64)
    row[used] = np.arange(len(used))
    zt, zi = rcml_features(run, used, rel_ids)

    # Relation-guided retrieval: 1 positive + negatives, scored under the query's relation.
    r = torch.as_tensor([col[x] for x in q["relation"]])
    cands = np.concatenate([q["target"][:, None], q["negatives"]], axis=1)
    pad = torch.as_tensor(cands < 0)
    cand_rows = torch.as_tensor(row[np.where(cands < 0, used[0], cands)])
    a_rows = torch.as_tensor(row[q["anchor"]])
    scores: dict[str, list[torch.Tensor]] = {name: [] for name in M.SIMILARITIES}
    for s in range(0, len(r), 256):  # chunks keep the [q, 1 + m, d] gathers small
        rr, ar, cr = r[s : s + 256], a_rows[s : s + 256], cand_rows[s : s + 256]
        ta, ia = zt[rr, ar][:, None], zi[rr, ar][:, None]  # [q, 1, d]
        tb, ib = zt[rr[:, None], cr], zi[rr[:, None], cr]  # [q, 1 + m, d]
        for name, v in M.pair_similarities(ta, ia, tb, ib).items():
            scores[name].append(v)
    hit = {}
    for name in M.SIMILARITIES:
        sc = torch.cat(scores[name]).masked_fill(pad, float("-inf"))
        hit[name] = M.hit_at_k(sc[:, 0], sc[:, 1:], k=5)
    n_neg = (q["negatives"] >= 0).sum(axis=1)

    # Relation-type prediction: score every relation for each test edge, top-3 accuracy.
    es, ed = torch.as_tensor(row[q["edge_src"]]), torch.as_tensor(row[q["edge_dst"]])
    pair = M.pair_similarities(zt[:, es], zi[:, es], zt[:, ed], zi[:, ed])  # each [R, e]
    target = torch.as_tensor([col[x] for x in q["edge_relation"]])
    top3 = {name: M.topk_accuracy(pair[name].T, target, k=3) for name in M.SIMILARITIES}
    return {
        "hit@5": hit,
        "relation_top3": top3["AVG"],
        "relation_top3_by_similarity": top3,
        "n_queries": int(len(q["anchor"])),
        "n_edges": int(len(q["edge_src"])),
        "n_relations": len(rel_ids),
        "negatives_per_query": {"min": int(n_neg.min()), "max": int(n_neg.max())},
        "random": {
            "hit@5": float(np.mean(np.minimum(1.0, 5.0 / (1.0 + n_neg)))),
            "relation_top3": min(1.0, 3.0 / len(rel_ids)),
        },
    }


def before_training(run: Run, split: str = "test") -> dict:
    """What the papers compare before and after training, measured on the model as it is
    now: SLIP's Fig. 5 hop similarities."""
    if run.cfg.method == "slip":
        return {"hops": slip_before(run, split)}
    return {}


def evaluate(
    run: Run, split: str = "test", before: dict | None = None, out_dir: Path | None = None
) -> dict:
    """Test metrics of the run's model (``before``: from ``before_training``); with
    ``out_dir``, the plots go there too."""
    before = before or {}
    if run.cfg.method == "slip":
        out, hop_values = slip_test_metrics(run, split, before.get("hops"))
        if out_dir is not None:
            plot_hop_similarity(hop_values, Path(out_dir) / "hop_similarity.png")
    else:
        out = evaluate_rcml(run, split)
    return {"method": run.cfg.method, "split": split, **out}


def val_score(run: Run) -> float | None:
    """Early-stopping score (higher is better): SLIP mean val MRR, RCML val Hit@5 (AVG)."""
    try:
        if run.cfg.method == "slip":
            if len(run.data.nodes("val")) < 2:
                return None
            m = evaluate_slip(run, "val")
            return (m["i2t"]["mrr"] + m["t2i"]["mrr"]) / 2
        m = evaluate_rcml(run, "val", max_queries=min(500, run.cfg.max_eval_queries))
        return m["hit@5"]["AVG"]
    except UserError:
        return None


@torch.no_grad()
def evaluate_loss(run: Run, split: str = "train") -> float:
    """Mean training objective over a split's subgraph batches, in eval mode (no dropout,
    fixed batches): comparable before and after training."""
    run.model.eval()
    sampler = SubgraphBatchSampler(
        run.data.adjacency(), run.data.nodes(split), run.cfg.batch_size, seed=run.cfg.seed
    )
    step_fn = slip_step if run.cfg.method == "slip" else rcml_step
    losses = [float(step_fn(run, batch)[0]) for batch in batches(run, sampler, train=False)]
    if not losses:
        raise UserError(f"the {split} split has no batch to score")
    return float(np.mean(losses))


def evaluate_run(
    run_dir: str | Path | None = None,
    data: str | Path | None = None,
    method: str | None = None,
    out: str | Path | None = None,
    split: str = "test",
    overrides: dict | None = None,
) -> dict:
    """Evaluate a run's best checkpoint, or (no run) the untrained model: for SLIP --frozen the
    published embeddings themselves, the zero-shot CLIP baseline. Writes OUT/metrics.json."""
    cfg_dict: dict[str, Any] = {}
    ckpt = None
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").exists():
            raise UserError(f"{run_dir}/config.json is missing: not a training run directory")
        cfg_dict = json.loads((run_dir / "config.json").read_text())
        ckpt = run_dir / "checkpoints" / "best.pt"
        if not ckpt.exists():
            raise UserError(f"{ckpt} is missing: the run has no checkpoint yet")
        if method and method != cfg_dict.get("method"):
            raise UserError(f"{run_dir} is a {cfg_dict.get('method')} run, not {method}")
    cfg_dict.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if method:
        cfg_dict["method"] = method
    if data is not None:
        cfg_dict["data"] = str(data)
    if "method" not in cfg_dict or "data" not in cfg_dict:
        raise UserError("give --run RUN_DIR, or a method and --data DIR")
    out_dir = Path(out) if out is not None else run_dir
    if out_dir is None:
        raise UserError("give --out DIR for the metrics of an untrained model")
    cfg_dict["out"] = str(out_dir)
    run = build_run(TrainConfig.from_dict(cfg_dict))
    result = {}
    before = None
    if ckpt is not None:
        before = before_training(run, split)  # the untrained model, as fit measured it
        result["best_epoch"] = load_checkpoint(run, ckpt)["epoch"]
    result = rounded({**evaluate(run, split, before, out_dir), **result})
    write_json(Path(out_dir) / "metrics.json", result)
    return result
