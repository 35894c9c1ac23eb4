"""Training and evaluation loops for SLIP and RCML on a published category folder.

A run directory holds:
    config.json            the full configuration (method defaults resolved)
    checkpoints/last.pt    model state after the latest epoch
    checkpoints/best.pt    model state with the best validation score
    history.json           per-epoch train losses, validation score, learning rates
    metrics.json           test metrics of the best checkpoint (written atomically)

Optimisation follows SLIP section 6.1: AdamW with discriminative layer-wise learning rates
(the top transformer block of each tower at the base rate, every block below it x decay),
the graph / head components at their own higher rate, linear warmup then decay to zero, early
stopping on the validation score (patience, min delta), optional gradient checkpointing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.errors import UserError
from pipeline.io import atomic_path, write_json
from pipeline.training import metrics as M
from pipeline.training.data import (
    CategoryData,
    NodeImageText,
    SubgraphBatchSampler,
    TarImages,
    batch_adjacency,
    batch_relations,
    load_category,
    load_embeddings,
    positive_mask,
)
from pipeline.training.rcml import RCMLModel, batch_pairs, rcml_loss
from pipeline.training.slip import SLIPModel, slip_loss

log = logging.getLogger(__name__)

METHODS = ("slip", "rcml")
# Per-method defaults (SLIP section 6.1; RCML appendix A.1), used where the config says None.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "slip": {
        "epochs": 50,
        "batch_size": 1024,
        "lr": 1e-5,
        "head_lr": 4e-3,
        "layer_decay": 0.8,
        "schedule": "linear",
    },
    "rcml": {
        "epochs": 3,
        "batch_size": 512,
        "lr": 5e-5,
        "head_lr": 1e-3,
        "layer_decay": 1.0,
        "schedule": "cosine",
    },
}


@dataclass
class TrainConfig:
    method: str
    data: str
    out: str
    frozen: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # base rate of the CLIP encoders
    head_lr: float | None = None  # graph / attention heads (and frozen-mode adapters)
    layer_decay: float | None = None
    schedule: str | None = None  # "linear" | "cosine" decay after warmup
    weight_decay: float = 0.01
    warmup_steps: int = 500
    grad_clip: float = 1.0
    patience: int = 10
    min_delta: float = 0.001
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs)
    # SLIP
    text_field: str = "title"
    hops: int = 1
    lambda_graph: float = 0.05
    lambda_aux: float = 0.1
    gat_hidden: int = 512
    gat_heads: int = 4
    dropout: float = 0.1
    # RCML
    beta: float = 0.6
    tau: float = 0.1
    lambda_intra: float = 0.5
    negatives: int = 20
    max_eval_queries: int = 2000
    # model and hardware
    model: str = "acmmg-tiny"
    pretrained: str | None = None
    checkpoint: str | None = None
    grad_checkpointing: bool = False
    device: str = "auto"
    num_workers: int = 0
    eval_batch_size: int = 256

    def resolved(self) -> TrainConfig:
        if self.method not in METHODS:
            raise UserError(f"method must be one of {METHODS}, got {self.method!r}")
        values = asdict(self)
        for k, v in METHOD_DEFAULTS[self.method].items():
            if values[k] is None:
                values[k] = v
        cfg = TrainConfig(**values)
        if cfg.epochs < 1 or cfg.batch_size < 2:
            raise UserError("epochs must be >= 1 and batch size >= 2")
        if cfg.schedule not in ("linear", "cosine"):
            raise UserError(f"schedule must be linear or cosine, got {cfg.schedule!r}")
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------- optimisation


_BLOCK = re.compile(r"\.(?:resblocks|layers|blocks|layer)\.(\d+)\.")
_EMBED = (
    "token_embedding",
    "positional_embedding",
    "class_embedding",
    "conv1",
    "ln_pre",
    "patch_embed",
    "embeddings.",
)


def layer_ids(names: list[str]) -> dict[str, tuple[str, int, int]]:
    """Parameter name (within the CLIP model) -> (tower, layer id, tower depth).

    Layer 0 is the embedding, 1..L the transformer blocks, L + 1 the final norm and projection
    (and logit_scale). Parameters under ``visual.`` form the image tower, the rest the text.
    """
    depth: dict[str, int] = {"visual": 0, "text": 0}
    for n in names:
        m = _BLOCK.search(n)
        if m:
            tower = "visual" if n.startswith("visual.") else "text"
            depth[tower] = max(depth[tower], int(m.group(1)) + 1)
    out = {}
    for n in names:
        tower = "visual" if n.startswith("visual.") else "text"
        m = _BLOCK.search(n)
        if m:
            lid = int(m.group(1)) + 1
        elif any(k in n for k in _EMBED):
            lid = 0
        else:
            lid = depth[tower] + 1
        out[n] = (tower, lid, depth[tower])
    return out


def _no_decay(name: str, p: nn.Parameter) -> bool:
    return p.ndim < 2 or "embedding" in name or "logit_scale" in name


def param_groups(
    model: nn.Module, lr: float, head_lr: float, layer_decay: float, weight_decay: float
) -> list[dict]:
    """AdamW groups: CLIP parameters at lr * decay^(depth + 1 - layer), heads at head_lr."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    clip_named = [
        (n[len("clip.") :], p)
        for n, p in model.named_parameters()
        if n.startswith("clip.") and p.requires_grad
    ]
    ids = layer_ids([n for n, _ in clip_named])
    for n, p in clip_named:
        _, lid, depth = ids[n]
        g_lr = lr * layer_decay ** (depth + 1 - lid)
        groups.setdefault((g_lr, 0.0 if _no_decay(n, p) else weight_decay), []).append(p)
    for n, p in model.named_parameters():
        if not n.startswith("clip.") and p.requires_grad:
            groups.setdefault((head_lr, 0.0 if _no_decay(n, p) else weight_decay), []).append(p)
    return [
        {"params": ps, "lr": g_lr, "weight_decay": wd}
        for (g_lr, wd), ps in sorted(groups.items(), key=lambda kv: kv[0])
    ]


def warmup_decay(total_steps: int, warmup_steps: int, schedule: str = "linear"):
    """LR multiplier: linear 0 -> 1 over warmup, then linear (or cosine) decay to 0 at the end."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        rest = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / rest)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


class EarlyStopping:
    """Stop when the monitored score (higher is better) has not improved by more than
    ``min_delta`` for ``patience`` consecutive checks."""

    def __init__(self, patience: int = 10, min_delta: float = 0.001):
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.bad = 0

    def step(self, score: float) -> bool:
        """Record a score; True when it is a new best."""
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.bad = score, 0
            return True
        self.bad += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad >= self.patience


# --------------------------------------------------------------------------- setup


def resolve_device(device: str = "auto") -> torch.device:
    """pipeline.clip's device rule, with its refusal as a user error."""
    from pipeline.clip import resolve_device as clip_device

    try:
        return clip_device(device)
    except ValueError as e:
        raise UserError(str(e)) from e


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Run:
    """Everything a training or evaluation loop needs, built once from a config."""

    cfg: TrainConfig
    data: CategoryData
    model: nn.Module
    device: torch.device
    tokenizer: Any = None
    preprocess_train: Any = None
    preprocess_val: Any = None
    images: TarImages | None = None
    emb_image: torch.Tensor | None = None
    emb_text: torch.Tensor | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.model_uses_clip:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def model_uses_clip(self) -> bool:
        return getattr(self.model, "clip", None) is not None


def _load_clip(cfg: TrainConfig, device: torch.device):
    from open_clip.model import get_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from pipeline import clip as pclip

    # open_clip logs every loading step at INFO on the root logger; keep those for -v only.
    root = logging.getLogger()
    level = root.level
    if level > logging.DEBUG:
        root.setLevel(max(level, logging.WARNING))
    try:
        cm = pclip.load_model(
            cfg.model,
            pretrained=cfg.pretrained,
            checkpoint=cfg.checkpoint,
            device=str(device),
            precision="fp32",
            seed=cfg.seed,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise UserError(f"cannot load CLIP model {cfg.model!r}: {e}") from e
    finally:
        root.setLevel(level)
    net = cm.model
    if cfg.grad_checkpointing:
        net.set_grad_checkpointing(True)
    pp = PreprocessCfg(**get_model_preprocess_cfg(net))
    return net, cm.embed_dim, cm.tokenizer, image_transform_v2(pp, is_train=True), cm.preprocess


def build_run(cfg: TrainConfig) -> Run:
    cfg = cfg.resolved()
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)
    data = load_category(cfg.data)
    if data.num_nodes < 4:
        raise UserError(f"{cfg.data}: only {data.num_nodes} nodes, too few to train")
    if cfg.method == "slip" and cfg.frozen:
        emb_image = load_embeddings(data.root, "image")
        emb_text = load_embeddings(data.root, cfg.text_field)
        for name, e in (("image", emb_image), (cfg.text_field, emb_text)):
            if e.shape[0] != data.num_nodes:
                raise UserError(f"{name} embeddings have {e.shape[0]} rows, nodes {data.num_nodes}")
        if emb_image.shape[1] != emb_text.shape[1]:
            raise UserError("image and text embeddings differ in dimension")
        model = _slip_model(cfg, None, emb_image.shape[1], data.num_classes)
        return Run(cfg, data, model.to(device), device, emb_image=emb_image, emb_text=emb_text)
    net, dim, tokenizer, pp_train, pp_val = _load_clip(cfg, device)
    images = TarImages(data.root / "images.tar")
    images.check(data.asins)
    if cfg.method == "slip":
        model = _slip_model(cfg, net, dim, data.num_classes)
    else:
        if not data.relation_texts or not (data.relation_id >= 0).any():
            raise UserError(
                f"{cfg.data}: RCML needs relations (relations.json and edges.parquet "
                "relation_id); build the category with the relations stage"
            )
        model = RCMLModel(net, dim, beta=cfg.beta, frozen=cfg.frozen)
    return Run(cfg, data, model.to(device), device, tokenizer, pp_train, pp_val, images)


def _slip_model(cfg: TrainConfig, net, dim: int, num_classes: int) -> SLIPModel:
    return SLIPModel(
        net,
        dim,
        num_classes,
        hidden=cfg.gat_hidden,
        heads=cfg.gat_heads,
        dropout=cfg.dropout,
        use_graph=cfg.lambda_graph > 0,
        use_aux=cfg.lambda_aux > 0,
    )


# --------------------------------------------------------------------------- batches


class _Collate:
    """Stack images and tokenise texts (a class, so DataLoader workers can pickle it)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items: list) -> dict:
        ids, imgs, texts = zip(*items, strict=True)
        return {
            "nodes": list(ids),
            "images": torch.stack(imgs),
            "tokens": self.tokenizer(list(texts)),
        }


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _image_text_loader(run: Run, batch_sampler, train: bool) -> torch.utils.data.DataLoader:
    ds = NodeImageText(
        run.data,
        run.images,
        run.preprocess_train if train else run.preprocess_val,
        run.cfg.text_field,
    )
    return torch.utils.data.DataLoader(
        ds,
        batch_sampler=batch_sampler,
        collate_fn=_Collate(run.tokenizer),
        num_workers=run.cfg.num_workers,
        worker_init_fn=_worker_init if run.cfg.num_workers else None,
        pin_memory=run.device.type == "cuda",
    )


def _batches(run: Run, sampler, train: bool):
    """Yield batch dicts (node ids + model inputs on the device) for the sampler's batches."""
    if run.emb_image is not None:
        for nodes in sampler:
            idx = torch.as_tensor(nodes)
            yield {
                "nodes": list(nodes),
                "image_emb": run.emb_image[idx].to(run.device),
                "text_emb": run.emb_text[idx].to(run.device),
            }
        return
    for batch in _image_text_loader(run, sampler, train):
        batch["images"] = batch["images"].to(run.device, non_blocking=True)
        batch["tokens"] = batch["tokens"].to(run.device, non_blocking=True)
        yield batch


def _chunks(nodes: np.ndarray, size: int) -> list[list[int]]:
    return [nodes[s : s + size].tolist() for s in range(0, len(nodes), size)]


# --------------------------------------------------------------------------- steps


def slip_step(run: Run, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    adj = batch_adjacency(run.data.adjacency(), batch["nodes"]).to(run.device)
    labels = torch.as_tensor(run.data.labels[batch["nodes"]], device=run.device)
    with run.autocast():
        out = run.model(batch, adj)
    pos = positive_mask(adj, run.cfg.hops)
    return slip_loss(out, pos, labels, run.cfg.lambda_graph, run.cfg.lambda_aux)


def _relation_tokens(run: Run, rel_ids: list[int], intra: bool) -> torch.Tensor:
    texts = ([run.data.intra_text] if intra else []) + [run.data.relation_texts[r] for r in rel_ids]
    return run.tokenizer(texts).to(run.device)


def rcml_step(run: Run, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    nodes = batch["nodes"]
    related = batch_adjacency(run.data.adjacency(), nodes)
    related |= torch.eye(len(nodes), dtype=torch.bool)
    cross, inter, rel_ids = batch_pairs(batch_relations(run.data.relation_matrix(), nodes))
    model: RCMLModel = run.model
    with run.autocast():
        feats = model.tokens(batch["images"], batch["tokens"])
        rel = model.relation_embeddings(_relation_tokens(run, rel_ids, intra=True))
        intra = torch.zeros(len(rel_ids) + 1, dtype=torch.bool, device=run.device)
        intra[0] = True
        z_t, z_i = model.conditioned(feats, rel, intra)
    dev = run.device
    return rcml_loss(
        z_t.float(),
        z_i.float(),
        cross.to(dev),
        inter.to(dev),
        related.to(dev),
        run.cfg.tau,
        run.cfg.lambda_intra,
    )


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def slip_embeddings(run: Run, nodes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (E_v, E_t) of ``nodes`` (no graph needed at retrieval time)."""
    run.model.eval()
    ev, et = [], []
    for batch in _batches(run, _chunks(nodes, run.cfg.eval_batch_size), train=False):
        with run.autocast():
            e_v, e_t = run.model.encode(batch)
        ev.append(e_v.float().cpu())
        et.append(e_t.float().cpu())
    return torch.cat(ev), torch.cat(et)


def evaluate_slip(run: Run, split: str = "test") -> dict:
    nodes = run.data.nodes(split)
    if len(nodes) < 2:
        raise UserError(f"the {split} split has {len(nodes)} nodes: nothing to retrieve")
    e_v, e_t = slip_embeddings(run, nodes)
    return M.cross_modal_retrieval(e_v, e_t)


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
    rel = model.relation_embeddings(_relation_tokens(run, rel_ids, intra=False))
    intra = torch.zeros(len(rel_ids), dtype=torch.bool, device=run.device)
    zt, zi = [], []
    for batch in _batches(run, _chunks(nodes, run.cfg.eval_batch_size), train=False):
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


def evaluate(run: Run, split: str = "test") -> dict:
    out = evaluate_slip(run, split) if run.cfg.method == "slip" else evaluate_rcml(run, split)
    return {"method": run.cfg.method, "split": split, **out}


def _val_score(run: Run) -> float | None:
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


# --------------------------------------------------------------------------- training


def _rounded(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


def _save_checkpoint(path: Path, run: Run, epoch: int, score: float | None) -> None:
    state = {
        "config": asdict(run.cfg),
        "epoch": epoch,
        "score": score,
        "model": run.model.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(run: Run, path: Path) -> dict:
    state = torch.load(path, map_location=run.device, weights_only=False)
    run.model.load_state_dict(state["model"])
    return state


@torch.no_grad()
def evaluate_loss(run: Run, split: str = "train") -> float:
    """Mean training objective over a split's subgraph batches, in eval mode (no dropout,
    fixed batches): comparable before and after training."""
    run.model.eval()
    sampler = SubgraphBatchSampler(
        run.data.adjacency(), run.data.nodes(split), run.cfg.batch_size, seed=run.cfg.seed
    )
    step_fn = slip_step if run.cfg.method == "slip" else rcml_step
    losses = [float(step_fn(run, batch)[0]) for batch in _batches(run, sampler, train=False)]
    if not losses:
        raise UserError(f"the {split} split has no batch to score")
    return float(np.mean(losses))


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train, keep the best checkpoint by validation score, write test metrics. Returns them."""
    return fit(build_run(cfg), progress=progress)


def fit(run: Run, progress: bool = True) -> dict:
    """Train a built run (see ``train``); the model ends with the best checkpoint loaded."""
    cfg = run.cfg
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", asdict(cfg))
    data = run.data
    train_nodes = data.nodes("train")
    if len(train_nodes) < 2:
        raise UserError(f"the train split has {len(train_nodes)} nodes: nothing to train on")
    if cfg.method == "rcml":  # fail now rather than after training
        test_edges = data.edges_within(data.nodes("test"))
        if not (data.relation_id[test_edges] >= 0).any():
            raise UserError("the test split has no edge with a relation: RCML cannot be evaluated")
    sampler = SubgraphBatchSampler(data.adjacency(), train_nodes, cfg.batch_size, seed=cfg.seed)
    steps_per_epoch = len(sampler)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    # SLIP warms up over 500 steps of a long run; on a short run that would be the whole run.
    warmup = min(cfg.warmup_steps, total // 10)
    if warmup < cfg.warmup_steps:
        log.info("warmup shortened to %d steps (10%% of %d total steps)", warmup, total)
    groups = param_groups(run.model, cfg.lr, cfg.head_lr, cfg.layer_decay, cfg.weight_decay)
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(total, warmup, cfg.schedule))
    step_fn = slip_step if cfg.method == "slip" else rcml_step
    stopper = EarlyStopping(cfg.patience, cfg.min_delta)
    ckpt_dir = out / "checkpoints"
    history: list[dict] = []
    step = 0
    log.info(
        "training %s on %s: %d train nodes, %d steps/epoch, device %s, split from %s",
        cfg.method,
        data.root,
        len(train_nodes),
        steps_per_epoch,
        run.device,
        data.split_source,
    )
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        run.model.train()
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not progress,
            dynamic_ncols=True,
        )
        for batch in _batches(run, sampler, train=True):
            loss, parts = step_fn(run, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            seen += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if step >= total:
                break
        bar.close()
        train_losses = {k: v / max(seen, 1) for k, v in sums.items()}
        score = _val_score(run)
        monitored = score if score is not None else -train_losses.get("loss", 0.0)
        improved = stopper.step(monitored)
        history.append(
            {
                "epoch": epoch + 1,
                "steps": step,
                "train": train_losses,
                "val_score": score,
                "lr_max": max(g["lr"] for g in opt.param_groups),
            }
        )
        log.info(
            "epoch %d: train loss %.4f, val score %s%s",
            epoch + 1,
            train_losses.get("loss", float("nan")),
            "n/a" if score is None else f"{score:.4f}",
            " (best)" if improved else "",
        )
        _save_checkpoint(ckpt_dir / "last.pt", run, epoch + 1, score)
        if improved:
            _save_checkpoint(ckpt_dir / "best.pt", run, epoch + 1, score)
        write_json(out / "history.json", _rounded(history))
        if stopper.should_stop:
            log.info(
                "early stopping after epoch %d (no improvement for %d epochs)",
                epoch + 1,
                cfg.patience,
            )
            break
        if step >= total:
            break
    best = load_checkpoint(run, ckpt_dir / "best.pt")
    result = evaluate(run, "test")
    result["best_epoch"] = best["epoch"]
    result = _rounded(result)
    write_json(out / "metrics.json", result)
    return result


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
    if ckpt is not None:
        result["best_epoch"] = load_checkpoint(run, ckpt)["epoch"]
    result = _rounded({**evaluate(run, split), **result})
    write_json(Path(out_dir) / "metrics.json", result)
    return result
