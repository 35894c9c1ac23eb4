"""What RCML reports (section 4.3), on one split of a built RCML run.

- Relation-guided retrieval: Hit@5 over 1 positive + ``negatives`` random negatives, with
  the five similarities TT, II, TI, IT, AVG.
- Relation-type prediction: top-3 accuracy of the edge's (top) relation among all relations.
- Relation validity: given a pair and a relation text, is it a true relation of the pair?
  Positives are split edges with one of their relations (every relation in relation_ids
  counts, else relation_id); each gets a negative, the same pair with a relation it does not
  have. A linear classifier (``classify.linear_probe``) on [z_T(A), z_I(A), z_T(B), z_I(B),
  h_E] is fitted on train-split examples and scored on the split's (chance 0.5).
- The baseline "CLIP with the relation text appended" (section 4.3.1): the untrained CLIP
  model with each product's text followed by the relation text; for validity, plain CLIP
  features (frozen baseline, as the paper's 4.3.3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.training import metrics as M
from pipeline.training.batches import batches, chunks
from pipeline.training.classify import linear_probe, standardiser
from pipeline.training.data import CategoryData
from pipeline.training.rcml import RCMLModel
from pipeline.training.run import Run
from pipeline.training.steps import relation_tokens

CHUNK = 256  # queries per gather: keeps the [q, 1 + m, d] tensors small


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


def validity_examples(
    data: CategoryData, split: str, max_edges: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Relation-validity examples inside one split: for each sampled edge with relations, one
    of its relations (label 1) and one relation it does not have (label 0). Seeded."""
    rng = np.random.default_rng([seed, 7])
    e = data.edges_within(data.nodes(split))
    e = e[[len(data.edge_relations(i)) > 0 for i in e]] if len(e) else e
    if len(e) > max_edges:
        e = np.sort(rng.choice(e, max_edges, replace=False))
    all_ids = np.array(sorted(data.relation_texts), dtype=np.int64)
    src, dst, rel, label = [], [], [], []
    for i in e:
        true = data.edge_relations(i)
        false = all_ids[~np.isin(all_ids, true)]
        if not len(false):
            continue
        for r, y in ((rng.choice(true), 1), (rng.choice(false), 0)):
            src.append(data.src[i])
            dst.append(data.dst[i])
            rel.append(r)
            label.append(y)
    as_int = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return {"src": as_int(src), "dst": as_int(dst), "relation": as_int(rel), "label": as_int(label)}


class Features:
    """z_T and z_I of some nodes under every relation ([R or 1, n, d] each: a feature that
    does not depend on the relation has one row, broadcast), h_E per relation ([R, d]), and
    the lookups from node ids and relation ids to rows and columns."""

    def __init__(self, zt, zi, h_e, nodes: np.ndarray, rel_ids: list[int], num_nodes: int):
        self.zt, self.zi, self.h_e = zt, zi, h_e
        self.row = np.full(num_nodes, -1, dtype=np.int64)
        self.row[nodes] = np.arange(len(nodes))
        self.col = {r: k for k, r in enumerate(rel_ids)}

    def cols(self, relation_ids: np.ndarray) -> torch.Tensor:
        return torch.as_tensor([self.col[int(r)] for r in relation_ids], dtype=torch.long)

    def get(self, c: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_T, z_I) at relation columns ``c`` and node rows ``rows`` (broadcasting)."""
        ct = c if self.zt.shape[0] > 1 else torch.zeros_like(c)
        ci = c if self.zi.shape[0] > 1 else torch.zeros_like(c)
        return self.zt[ct, rows], self.zi[ci, rows]


def _used_nodes(*arrays: np.ndarray) -> np.ndarray:
    used = np.unique(np.concatenate([a.ravel() for a in arrays]))
    return used[used >= 0]


def score_retrieval(f: Features, q: dict) -> dict:
    """Hit@5 for every similarity, and the chance level of the negatives drawn."""
    r = f.cols(q["relation"])
    cands = np.concatenate([q["target"][:, None], q["negatives"]], axis=1)
    pad = torch.as_tensor(cands < 0)
    cand_rows = torch.as_tensor(f.row[np.where(cands < 0, q["target"][:, None], cands)])
    a_rows = torch.as_tensor(f.row[q["anchor"]])
    scores: dict[str, list[torch.Tensor]] = {name: [] for name in M.SIMILARITIES}
    for s in range(0, len(r), CHUNK):
        rr, ar, cr = r[s : s + CHUNK], a_rows[s : s + CHUNK], cand_rows[s : s + CHUNK]
        ta, ia = f.get(rr, ar)
        tb, ib = f.get(rr[:, None].expand_as(cr), cr)  # [q, 1 + m, d]
        for name, v in M.pair_similarities(ta[:, None], ia[:, None], tb, ib).items():
            scores[name].append(v)
    hit = {}
    for name in M.SIMILARITIES:
        sc = torch.cat(scores[name]).masked_fill(pad, float("-inf"))
        hit[name] = M.hit_at_k(sc[:, 0], sc[:, 1:], k=5)
    n_neg = (q["negatives"] >= 0).sum(axis=1)
    chance = float(np.mean(np.minimum(1.0, 5.0 / (1.0 + n_neg))))
    return {"hit@5": hit, "n_neg": n_neg, "chance": chance}


def score_types(f: Features, q: dict, n_relations: int) -> dict[str, float]:
    """Relation-type top-3 accuracy for every similarity: all relations scored per edge."""
    es, ed = torch.as_tensor(f.row[q["edge_src"]]), torch.as_tensor(f.row[q["edge_dst"]])
    c = torch.arange(n_relations)[:, None]  # [R, 1] against [e] rows: [R, e]
    ts, is_ = f.get(c, es[None])
    td, id_ = f.get(c, ed[None])
    pair = M.pair_similarities(ts, is_, td, id_)
    target = f.cols(q["edge_relation"])
    return {name: M.topk_accuracy(pair[name].T, target, k=3) for name in M.SIMILARITIES}


def validity_features(f: Features, ex: dict) -> torch.Tensor:
    """[z_T(A), z_I(A), z_T(B), z_I(B), h_E] per example (the paper's classifier input)."""
    c = f.cols(ex["relation"])
    ta, ia = f.get(c, torch.as_tensor(f.row[ex["src"]]))
    tb, ib = f.get(c, torch.as_tensor(f.row[ex["dst"]]))
    return torch.cat([ta, ia, tb, ib, f.h_e[c]], dim=1).float()


def score_validity(train: tuple, test: tuple) -> dict:
    """Accuracy of a linear classifier fitted on the train examples, on the test examples."""
    (x_tr, y_tr), (x_te, y_te) = train, test
    if len(y_tr) == 0 or len(np.unique(y_tr)) < 2 or len(y_te) == 0:
        return {"skipped": "too few edges with relations for train and test examples"}
    scale = standardiser(x_tr)
    probe = linear_probe(scale(x_tr), y_tr, num_classes=2)
    pred = probe(scale(x_te)).argmax(dim=1).numpy()
    return {
        "accuracy": float(np.mean(pred == y_te)),
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "random": 0.5,
    }


# ------------------------------------------------------------------------- features


@torch.no_grad()
def rcml_features(run: Run, nodes: np.ndarray, rel_ids: list[int]) -> Features:
    """z_T and z_I of ``nodes`` under every relation in ``rel_ids`` ([R, n, d], CPU fp16)."""
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
    h_e = F.normalize(rel.float(), dim=-1).cpu()
    z_t, z_i = torch.cat(zt, dim=1), torch.cat(zi, dim=1)
    return Features(z_t, z_i, h_e, nodes, rel_ids, run.data.num_nodes)


@torch.no_grad()
def encode_texts(run: Run, texts: list[str]) -> torch.Tensor:
    clip = run.model.clip
    out = []
    for s in range(0, len(texts), run.cfg.eval_batch_size):
        tokens = run.tokenizer(texts[s : s + run.cfg.eval_batch_size]).to(run.device)
        with run.autocast():
            out.append(F.normalize(clip.encode_text(tokens).float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, 1)


@torch.no_grad()
def clip_features(run: Run, nodes: np.ndarray, rel_ids: list[int], appended=None) -> Features:
    """Plain CLIP features of ``nodes`` (the run's CLIP model as it is now): image and text
    embeddings, the same under every relation. ``appended`` (relation columns [k], node rows
    [k]): those (relation, node) texts get the relation text appended, as RCML's baselines."""
    run.model.eval()
    clip = run.model.clip
    img = []
    for batch in batches(run, chunks(nodes, run.cfg.eval_batch_size), train=False):
        with run.autocast():
            img.append(F.normalize(clip.encode_image(batch["images"]).float(), dim=-1).cpu())
    zi = torch.cat(img)[None]
    texts = run.data.texts(run.cfg.text_field)
    rel_texts = [run.data.relation_texts[r] for r in rel_ids]
    h_e = encode_texts(run, rel_texts)
    zt = encode_texts(run, [texts[n] for n in nodes])[None]
    f = Features(zt, zi, h_e, nodes, rel_ids, run.data.num_nodes)
    if appended is not None:
        cols, rows = appended
        both = torch.zeros(len(rel_ids), len(nodes), zt.shape[-1])
        joined = [f"{texts[nodes[r]]} {rel_texts[c]}" for c, r in zip(cols, rows, strict=True)]
        both[torch.as_tensor(cols), torch.as_tensor(rows)] = encode_texts(run, joined)
        f.zt = both
    return f


# ------------------------------------------------------------------------- evaluations


def _queries(run: Run, split: str, max_queries: int | None) -> dict:
    cfg = run.cfg
    q = relation_queries(
        run.data, split, cfg.negatives, max_queries or cfg.max_eval_queries, cfg.seed
    )
    if len(q["anchor"]) == 0:
        raise UserError(f"the {split} split has no edge with a relation: nothing to retrieve")
    return q


def rcml_retrieval(run: Run, split: str, max_queries: int | None = None) -> dict:
    """Hit@5 only (the early-stopping score uses this)."""
    q = _queries(run, split, max_queries)
    rel_ids = sorted(run.data.relation_texts)
    used = _used_nodes(q["anchor"], q["target"], q["negatives"])
    return score_retrieval(rcml_features(run, used, rel_ids), q)


def _validity_sets(run: Run, split: str) -> tuple[dict, dict]:
    half = max(1, run.cfg.max_eval_queries // 2)
    return (
        validity_examples(run.data, "train", half, run.cfg.seed),
        validity_examples(run.data, split, half, run.cfg.seed),
    )


def _all_scores(f: Features, q: dict, n_rel: int, val: tuple, f_val: Features):
    """(the task scores, the retrieval details) of one set of features."""
    ret = score_retrieval(f, q)
    top3 = score_types(f, q, n_rel)
    tr, te = val
    validity = score_validity(
        (validity_features(f_val, tr), tr["label"]), (validity_features(f_val, te), te["label"])
    )
    scores = {
        "hit@5": ret["hit@5"],
        "relation_top3": top3["AVG"],
        "relation_top3_by_similarity": top3,
        "relation_validity": validity,
    }
    return scores, ret


def _validity_nodes(val: tuple) -> np.ndarray:
    return _used_nodes(*(v[k] for v in val for k in ("src", "dst")))


def evaluate_rcml(run: Run, split: str = "test", baseline: dict | None = None) -> dict:
    """Everything RCML reports on ``split``; ``baseline`` from ``clip_baseline``."""
    data = run.data
    q = _queries(run, split, None)
    rel_ids = sorted(data.relation_texts)
    used = _used_nodes(q["anchor"], q["target"], q["negatives"], q["edge_src"], q["edge_dst"])
    val = _validity_sets(run, split)
    f = rcml_features(run, used, rel_ids)
    f_val = rcml_features(run, _validity_nodes(val), rel_ids) if len(val[0]["src"]) else f
    out, ret = _all_scores(f, q, len(rel_ids), val, f_val)
    n_neg = ret["n_neg"]
    out |= {
        "n_queries": int(len(q["anchor"])),
        "n_edges": int(len(q["edge_src"])),
        "n_relations": len(rel_ids),
        "negatives_per_query": {"min": int(n_neg.min()), "max": int(n_neg.max())},
        "random": {"hit@5": ret["chance"], "relation_top3": min(1.0, 3.0 / len(rel_ids))},
    }
    if baseline is not None:
        out["clip_relation_text"] = baseline
    return out


def clip_baseline(run: Run, split: str = "test") -> dict:
    """RCML's CLIP baseline with the run's CLIP model as it is now (call before training):
    Hit@5 and relation top-3 with the relation text appended to each product's text;
    relation validity on plain CLIP features."""
    q = _queries(run, split, None)
    rel_ids = sorted(run.data.relation_texts)
    used = _used_nodes(q["anchor"], q["target"], q["negatives"], q["edge_src"], q["edge_dst"])
    row = np.full(run.data.num_nodes, -1, dtype=np.int64)
    row[used] = np.arange(len(used))
    col = {r: k for k, r in enumerate(rel_ids)}
    # The (relation, node) texts the two scorings read: the query's relation for the anchor
    # and its candidates; every relation for both ends of each typed edge.
    cands = np.concatenate([q["anchor"][:, None], q["target"][:, None], q["negatives"]], axis=1)
    rq = np.repeat([col[int(r)] for r in q["relation"]], cands.shape[1])
    ends = np.concatenate([q["edge_src"], q["edge_dst"]])
    pairs = np.concatenate(
        [
            np.stack([rq, cands.ravel()], axis=1),
            np.stack(
                [np.repeat(np.arange(len(rel_ids)), len(ends)), np.tile(ends, len(rel_ids))], 1
            ),
        ]
    )
    pairs = np.unique(pairs[pairs[:, 1] >= 0], axis=0)
    f = clip_features(run, used, rel_ids, appended=(pairs[:, 0], row[pairs[:, 1]]))
    val = _validity_sets(run, split)
    f_val = clip_features(run, _validity_nodes(val), rel_ids) if len(val[0]["src"]) else f
    out, _ = _all_scores(f, q, len(rel_ids), val, f_val)
    weights = run.cfg.pretrained or run.cfg.checkpoint or "random weights"
    return out | {"model": f"{run.cfg.model} ({weights}), untrained"}
