"""What SLIP reports, on one split of a built SLIP run.

- Cross-modal retrieval (Table 2): i2t / t2i MRR, R@1/5/10, mean and median rank, and the
  mean of the two MRRs (Table 2's "Mean" column); ``random`` is the chance MRR, H(n) / n.
- Zero-shot classification: each class name in a text prompt, embedded by the run's text
  encoder (SLIP --frozen: the model that made the folder's embeddings, when it can be loaded
  and reproduces them), against the image embedding E_v and the fused one.
- Few-shot classification: k-shot linear probes (k in --shots, --fewshot-seeds draws of the
  support nodes from the train split) on E_v, the fused embedding normalise(E_v + E_t) and,
  when the model has its graph heads, SLIP's Z (the GAT + phi output, over the split's graph).
- Fig. 5: cross-modal cosine by hop distance (``hops.py``).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.training import metrics as M
from pipeline.training.batches import batches, chunks
from pipeline.training.classify import few_shot, zero_shot
from pipeline.training.data import SubgraphBatchSampler, batch_adjacency, load_embeddings
from pipeline.training.hops import hop_pairs, hop_similarity
from pipeline.training.run import Run, load_clip_model

log = logging.getLogger(__name__)


@torch.no_grad()
def slip_embeddings(run: Run, nodes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (E_v, E_t) of ``nodes`` (no graph needed at retrieval time)."""
    run.model.eval()
    ev, et = [], []
    for batch in batches(run, chunks(nodes, run.cfg.eval_batch_size), train=False):
        with run.autocast():
            e_v, e_t = run.model.encode(batch)
        ev.append(e_v.float().cpu())
        et.append(e_t.float().cpu())
    return torch.cat(ev), torch.cat(et)


def _split_nodes(run: Run, split: str) -> np.ndarray:
    nodes = run.data.nodes(split)
    if len(nodes) < 2:
        raise UserError(f"the {split} split has {len(nodes)} nodes: nothing to retrieve")
    return nodes


def retrieval(e_v: torch.Tensor, e_t: torch.Tensor) -> dict:
    out = M.cross_modal_retrieval(e_v, e_t)
    n = out["n_test"]
    out["mean_mrr"] = (out["i2t"]["mrr"] + out["t2i"]["mrr"]) / 2
    out["random"] = {"mrr": sum(1.0 / k for k in range(1, n + 1)) / n}
    return out


def evaluate_slip(run: Run, split: str = "test") -> dict:
    """Retrieval only (the early-stopping score uses this)."""
    return retrieval(*slip_embeddings(run, _split_nodes(run, split)))


@torch.no_grad()
def graph_embeddings(run: Run, nodes: np.ndarray, e_v: torch.Tensor, e_t: torch.Tensor):
    """SLIP's Z of ``nodes`` from their (E_v, E_t), over subgraph batches of the graph induced
    by ``nodes`` (fixed order), as in training; None without graph heads."""
    head = run.model.head
    if not head.use_graph:
        return None
    head.eval()
    pos = np.full(run.data.num_nodes, -1, dtype=np.int64)
    pos[nodes] = np.arange(len(nodes))
    adj = run.data.adjacency()
    sampler = SubgraphBatchSampler(
        adj, nodes, run.cfg.batch_size, seed=run.cfg.seed, shuffle=False, min_batch=1
    )
    z = torch.zeros(len(nodes), e_v.shape[1])
    for batch in sampler:
        p = torch.as_tensor(pos[batch])
        a = batch_adjacency(adj, batch).to(run.device)
        out = head(e_v[p].to(run.device), e_t[p].to(run.device), a)
        z[p] = out["z"].float().cpu()
    return z


def _class_prompts(run: Run) -> list[str] | None:
    names = run.data.class_names
    if not names:
        return None
    return [run.cfg.prompt.format(names.get(c, f"class {c}")) for c in range(run.data.num_classes)]


@torch.no_grad()
def _prompt_embeddings(run: Run, prompts: list[str]) -> tuple[torch.Tensor | None, str]:
    """E_t of the class prompts, or (None, why not)."""
    model = run.model
    if not model.frozen:
        model.eval()
        with run.autocast():
            e = model.clip.encode_text(run.tokenizer(prompts).to(run.device))
        return F.normalize(e.float(), dim=-1).cpu(), "the run's text encoder"
    cfg = run.cfg
    if cfg.model is None:
        return None, "the folder's manifest does not name the model that made its embeddings"
    try:
        # Random weights (acmmg-tiny) are drawn with the embed stage's seed, 0, not the run's.
        cm = load_clip_model(dataclasses.replace(cfg, seed=0), run.device)
    except UserError as e:
        return None, str(e)
    # The text tower must be the one that made the folder's embeddings.
    k = min(8, run.data.num_nodes)
    titles = load_embeddings(run.data.root, "title")[:k]
    mine = cm.model.encode_text(cm.tokenizer(run.data.titles[:k]).to(run.device)).float().cpu()
    agree = float((F.normalize(mine, dim=-1) * F.normalize(titles, dim=-1)).sum(-1).mean())
    if agree < 0.99:
        return None, (
            f"{cfg.model} does not reproduce the folder's title embeddings (cosine {agree:.3f})"
        )
    e = cm.model.encode_text(cm.tokenizer(prompts).to(run.device)).float()
    e_t = model.adapt_text(F.normalize(e, dim=-1))
    return F.normalize(e_t.float(), dim=-1).cpu(), f"{cfg.model} ({cfg.pretrained or 'random'})"


def zero_shot_metrics(run: Run, feats: dict[str, torch.Tensor], labels: np.ndarray) -> dict:
    prompts = _class_prompts(run)
    if prompts is None:
        return {"skipped": "no node_categories.json: no class names to prompt with"}
    class_text, source = _prompt_embeddings(run, prompts)
    if class_text is None:
        log.warning("zero-shot classification skipped: %s", source)
        return {"skipped": source}
    out = {kind: zero_shot(x, class_text, labels) for kind, x in feats.items()}
    return out | {
        "prompt": run.cfg.prompt,
        "text_encoder": source,
        "random": 1.0 / run.data.num_classes,
    }


def slip_test_metrics(run: Run, split: str = "test", before: dict | None = None) -> dict:
    """Everything SLIP reports on ``split``; ``before`` holds the untrained model's Fig. 5
    numbers (from ``slip_before``). Returns (metrics, hop cosines for the plot)."""
    nodes = _split_nodes(run, split)
    e_v, e_t = slip_embeddings(run, nodes)
    out = retrieval(e_v, e_t)
    labels = run.data.labels
    fused = F.normalize(e_v + e_t, dim=-1)
    out["zero_shot"] = zero_shot_metrics(run, {"image": e_v, "fused": fused}, labels[nodes])

    support = run.data.nodes("train")
    s_v, s_t = slip_embeddings(run, support) if split != "train" else (e_v, e_t)
    feats = {
        "image": torch.cat([s_v, e_v]),
        "fused": torch.cat([F.normalize(s_v + s_t, dim=-1), fused]),
    }
    z_s, z_q = graph_embeddings(run, support, s_v, s_t), graph_embeddings(run, nodes, e_v, e_t)
    if z_s is not None:
        feats["graph"] = torch.cat([z_s, z_q])
    both = np.concatenate([support, nodes])
    cfg = run.cfg
    out["few_shot"] = few_shot(
        feats,
        labels[both],
        np.arange(len(support)),
        np.arange(len(support), len(both)),
        run.data.num_classes,
        shots=cfg.shots,
        seeds=cfg.fewshot_seeds,
        seed=cfg.seed,
    ) | {"seeds": cfg.fewshot_seeds, "probe": "ridge classifier on standardised features (l2 1.0)"}

    summary, values = hop_summary(run, nodes, e_v, e_t)
    if before is None:  # an untrained model, or one without its starting point
        out["hop_similarity"] = {"model": summary}
        return out, {"model": values}
    out["hop_similarity"] = {"before": before[0], "after": summary}
    return out, {"before": before[1], "after": values}


def hop_summary(run: Run, nodes: np.ndarray, e_v: torch.Tensor, e_t: torch.Tensor):
    pairs = hop_pairs(run.data.adjacency(), nodes, seed=run.cfg.seed)
    return hop_similarity(e_v, e_t, pairs)


def slip_before(run: Run, split: str = "test"):
    """Fig. 5 numbers of the model as it is now (call before training)."""
    nodes = _split_nodes(run, split)
    return hop_summary(run, nodes, *slip_embeddings(run, nodes))
