"""Evaluators of a published category's standard tasks, with OGB's interface.

``Evaluator(name)`` has ``expected_input_format``, ``expected_output_format`` and
``eval(input_dict)`` as ``ogb.nodeproppred`` / ``ogb.linkproppred`` do. Inputs may be numpy
arrays, lists or torch tensors (torch is never imported here: a tensor is recognised by its
type and converted with ``.detach().cpu()``). Three tasks:

``node-classification``  ``{"y_true": [n] or [n, 1], "y_pred": [n] or [n, 1] labels, or
                         [n, C] scores}`` -> ``{"acc", "macro_f1"}``. Macro-F1 averages over
                         the classes present in y_true or y_pred (scikit-learn's rule); a
                         class never predicted correctly counts 0.
``link-prediction``      ``{"y_pred_pos": [n], "y_pred_neg": [n, k]}``: y_pred_pos[i] is
                         ranked among its own k negatives y_pred_neg[i], as in
                         ogb.linkproppred's MRR evaluator, with OGB's tie rule: rank =
                         1 + #(neg > pos) + 0.5 * #(neg == pos) (the mean of the optimistic
                         and the pessimistic rank). -> ``{"mrr", "hits@1", "hits@3",
                         "hits@10"}`` as means over the n positives (OGB returns per-edge lists
                         to be averaged; these are those averages).
``retrieval``            ``{"y_pred": [n, n]}`` scores of image i against text j (the pair
                         (i, i) is the correct one), or ``{"image": [n, d], "text": [n, d]}``
                         embeddings, scored by cosine ``chunk`` rows at a time. Image-to-text
                         ranks each row, text-to-image each column. Ties count against the
                         query (rank = #(candidates >= the correct one)), exactly as the
                         training module's ``pipeline.training.metrics`` does, so a collapsed
                         model gets the worst rank, never a lucky first. -> ``{"n_queries",
                         "i2t": {...}, "t2i": {...}}``, each with ``mrr``, ``r@1``, ``r@5``,
                         ``r@10``, ``mean_rank``, ``median_rank``.

Two tie rules on purpose: link prediction keeps OGB's, so its numbers read like OGB's; the
retrieval numbers are the training module's (they differ only where scores tie exactly).
NaN scores are refused (a NaN compares false with everything and would rank first).
``link_prediction_pairs(table, split)`` turns ``edge_splits.parquet`` into the node pairs to
score for ``y_pred_pos`` and ``y_pred_neg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

TASKS = ("node-classification", "link-prediction", "retrieval")
HITS_AT = (1, 3, 10)
RECALL_AT = (1, 5, 10)
DEFAULT_CHUNK = 2048  # retrieval rows scored at once: 2048 x 30k float32 is 245 MB


# ------------------------------------------------------------------------------ inputs


def as_array(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array, list, torch tensor, or anything with ``__array__``) as a numeric
    numpy array; ValueError naming ``name`` when it is not numeric or holds NaN."""
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
        t = x.detach().cpu()
        try:
            a = t.numpy()
        except TypeError:  # bfloat16 has no numpy twin: widen (exactly) to float32
            a = t.float().numpy()
    else:
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be an array of numbers: {e}") from None
    if a.dtype == bool:
        a = a.astype(np.int64)
    if not (np.issubdtype(a.dtype, np.number)):
        raise ValueError(f"{name} must be an array of numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
        raise ValueError(f"{name} contains NaN scores")
    return a


def _require(input_dict: Mapping[str, Any], *keys: str) -> list[Any]:
    if not isinstance(input_dict, Mapping):
        raise ValueError(f"eval() takes a dict with keys {', '.join(keys)}")
    missing = [k for k in keys if k not in input_dict]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)} (expected {', '.join(keys)})")
    return [input_dict[k] for k in keys]


def _column(a: np.ndarray, name: str) -> np.ndarray:
    """[n] or [n, 1] as [n]."""
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must have shape [n] or [n, 1], got {list(a.shape)}")
    return a


# ------------------------------------------------------------------ node classification


def classification_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy and macro-F1 of predicted labels ([n] or [n, 1]) or scores ([n, C], argmax)."""
    t = _column(as_array(y_true, "y_true"), "y_true")
    p = as_array(y_pred, "y_pred")
    if p.ndim == 2 and p.shape[1] > 1:
        p = p.argmax(axis=1)  # scores: the first of equal maxima wins, as np.argmax
    p = _column(p, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred hold {t.shape[0]} and {p.shape[0]} nodes")
    if t.size == 0:
        raise ValueError("no nodes to score")
    if not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
        if not (np.all(t == np.round(t)) and np.all(p == np.round(p))):
            raise ValueError("y_true and y_pred must be class labels (integers)")
        t, p = t.astype(np.int64), p.astype(np.int64)
    classes, inv = np.unique(np.concatenate([t, p]), return_inverse=True)
    ti, pi = inv[: t.size], inv[t.size :]
    c = classes.size
    hit = ti == pi
    tp = np.bincount(ti[hit], minlength=c)
    fp = np.bincount(pi, minlength=c) - tp
    fn = np.bincount(ti, minlength=c) - tp
    f1 = 2.0 * tp / (2.0 * tp + fp + fn)  # > 0 denominators: every class occurs somewhere
    return {"acc": float(hit.mean()), "macro_f1": float(f1.mean())}


# ---------------------------------------------------------------------- link prediction


def link_ranks(y_pred_pos: Any, y_pred_neg: Any) -> np.ndarray:
    """OGB's rank of each positive among its own negatives: 1 + #greater + 0.5 * #equal."""
    pos = as_array(y_pred_pos, "y_pred_pos")
    neg = as_array(y_pred_neg, "y_pred_neg")
    if pos.ndim != 1:
        raise ValueError(f"y_pred_pos must have shape [n], got {list(pos.shape)}")
    if neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"y_pred_neg must have shape [n, k] with n = {pos.shape[0]} (one row of negatives "
            f"per positive), got {list(neg.shape)}"
        )
    if pos.size == 0:
        raise ValueError("no positive edges to score")
    p = pos[:, None]
    return 1.0 + (neg > p).sum(axis=1) + 0.5 * (neg == p).sum(axis=1)


def link_metrics(y_pred_pos: Any, y_pred_neg: Any) -> dict[str, float]:
    """MRR and Hits@1/3/10 of OGB's ranks (``link_ranks``)."""
    r = link_ranks(y_pred_pos, y_pred_neg)
    out = {"mrr": float(np.mean(1.0 / r))}
    out.update({f"hits@{k}": float(np.mean(r <= k)) for k in HITS_AT})
    return out


_SPLIT_ALIASES = {"valid": "val", "validation": "val"}


def _split_rows(table: Any, name: str) -> dict[str, np.ndarray]:
    """src, dst, label, query of the rows of split ``name``, filtered by the table's own
    library (22M strings as Python objects would take GBs)."""
    cols = ("src", "dst", "label", "query")
    if type(table).__module__.split(".")[0] == "pyarrow":
        import pyarrow.compute as pc  # the table is pyarrow's, so pyarrow is imported already

        t = table.select(cols).filter(pc.equal(table["split"], name))
        return {c: t[c].to_numpy() for c in cols}
    mask = table["split"] == name  # pandas / polars: vectorised; a list: a plain bool
    mask = np.asarray(table["split"]) == name if np.ndim(mask) == 0 else np.asarray(mask)
    return {c: np.asarray(table[c])[mask] for c in cols}


def _stable_order(q: np.ndarray) -> np.ndarray | slice:
    """Indices sorting ``q`` stably; all of them in place when it is sorted already (the
    published file is: no 10M-row sort then)."""
    return slice(None) if np.all(q[1:] >= q[:-1]) else np.argsort(q, kind="stable")


def link_prediction_pairs(edge_splits: Any, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(positives [n, 2], negatives [n, k, 2]) node pairs of one split of
    ``edge_splits.parquet`` (a pyarrow Table, a pandas or polars DataFrame, or a dict of
    columns), in the order ``Evaluator("link-prediction")`` expects: score ``positives`` into
    y_pred_pos and ``negatives`` into y_pred_neg. ``split`` is "val" (or "valid") or "test"."""
    name = _SPLIT_ALIASES.get(split, split)
    try:
        cols = _split_rows(edge_splits, name)
    except Exception as e:  # KeyError, polars' ColumnNotFoundError, ...: all mean the same
        raise ValueError(
            f"not an edge_splits table (columns src, dst, split, label, query): {e}"
        ) from None
    pairs = np.stack([cols["src"], cols["dst"]], axis=1).astype(np.int64, copy=False)
    pos, neg = cols["label"] == 1, cols["label"] == 0
    qp, qn = cols["query"][pos], cols["query"][neg]
    n = int(qp.size)
    if n == 0:
        raise ValueError(f"no positive edges in split {split!r}")
    order_p = _stable_order(qp)
    if not np.array_equal(qp[order_p], np.arange(n)):
        raise ValueError(f"the positives of split {split!r} are not numbered 0..{n - 1}")
    if qn.size and (qn.min() < 0 or qn.max() >= n):
        raise ValueError(f"negatives of split {split!r} name queries outside 0..{n - 1}")
    counts = np.bincount(qn, minlength=n) if qn.size else np.zeros(n, dtype=np.int64)
    if np.any(counts != counts[0]):
        raise ValueError(f"the positives of split {split!r} have unequal numbers of negatives")
    order_n = _stable_order(qn)
    return pairs[pos][order_p], pairs[neg][order_n].reshape(n, int(counts[0]), 2)


# ---------------------------------------------------------------------------- retrieval


def rank_summary(ranks: np.ndarray) -> dict[str, float]:
    """MRR, R@1/5/10, mean and median of 1-based ranks (as the training module reports)."""
    r = np.asarray(ranks, dtype=np.float64)
    out = {"mrr": float(np.mean(1.0 / r))}
    out.update({f"r@{k}": float(np.mean(r <= k)) for k in RECALL_AT})
    out.update({"mean_rank": float(np.mean(r)), "median_rank": float(np.median(r))})
    return out


def _square(sim: np.ndarray) -> np.ndarray:
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"y_pred must be a square [n, n] score matrix, got {list(sim.shape)}")
    return sim


def diagonal_ranks(sim: np.ndarray, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(row ranks, column ranks) of the diagonal of a square score matrix, ties against."""
    n = _square(sim).shape[0]
    diag = sim.diagonal()
    rows = np.empty(n, dtype=np.int64)
    cols = np.empty(n, dtype=np.int64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        rows[s:e] = (sim[s:e] >= diag[s:e, None]).sum(axis=1)
        cols[s:e] = (sim[:, s:e] >= diag[None, s:e]).sum(axis=0)
    return rows, cols


def unit_rows(x: Any) -> np.ndarray:
    """Rows scaled to unit L2 norm, in float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, np.float32(1e-12))  # torch.nn.functional.normalize's eps


def embedding_ranks(
    image: np.ndarray, text: np.ndarray, chunk: int = DEFAULT_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """(image-to-text, text-to-image) ranks of paired rows by cosine, ``chunk`` rows at a time.

    The same procedure as ``pipeline.training.metrics.cross_modal_retrieval``: float32, each
    direction from its own product (query rows @ candidates.T), the correct score taken from
    that product, so ties are judged on the very numbers compared."""
    if image.ndim != 2 or image.shape != text.shape:
        raise ValueError(
            f"image and text must be two [n, d] arrays of one shape, got "
            f"{list(image.shape)} and {list(text.shape)}"
        )
    img, txt = unit_rows(image), unit_rows(text)
    n = img.shape[0]
    out = []
    for q, c in ((img, txt), (txt, img)):
        ranks = np.empty(n, dtype=np.int64)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            scores = q[s:e] @ c.T
            true = scores[np.arange(e - s), np.arange(s, e)]
            ranks[s:e] = (scores >= true[:, None]).sum(axis=1)
        out.append(ranks)
    return out[0], out[1]


def retrieval_metrics(input_dict: Mapping[str, Any], chunk: int = DEFAULT_CHUNK) -> dict:
    """i2t and t2i rank metrics from a score matrix ``y_pred`` or ``image`` / ``text``."""
    if isinstance(input_dict, Mapping) and "y_pred" in input_dict:
        i2t, t2i = diagonal_ranks(_square(as_array(input_dict["y_pred"], "y_pred")), chunk)
    else:
        image, text = _require(input_dict, "image", "text")
        i2t, t2i = embedding_ranks(as_array(image, "image"), as_array(text, "text"), chunk)
    if i2t.size == 0:
        raise ValueError("no queries to score")
    return {"n_queries": int(i2t.size), "i2t": rank_summary(i2t), "t2i": rank_summary(t2i)}


# ---------------------------------------------------------------------------- Evaluator

_INPUT = {
    "node-classification": (
        "{'y_true': y_true, 'y_pred': y_pred}\n"
        "- y_true: numpy ndarray, list or torch tensor of class ids, shape (num_nodes,) or "
        "(num_nodes, 1)\n"
        "- y_pred: predicted class ids of the same shape, or scores of shape "
        "(num_nodes, num_classes) (argmax is taken)\n"
    ),
    "link-prediction": (
        "{'y_pred_pos': y_pred_pos, 'y_pred_neg': y_pred_neg}\n"
        "- y_pred_pos: numpy ndarray, list or torch tensor of shape (num_edges,): the scores of "
        "the positive edges (edge_splits.parquet rows with label 1 of one split, by query)\n"
        "- y_pred_neg: shape (num_edges, num_negatives): row i holds the scores of the negatives "
        "of positive i (its label-0 rows, in file order)\n"
        "y_pred_pos[i] is ranked among y_pred_neg[i]; a tie counts half (OGB's rule).\n"
    ),
    "retrieval": (
        "{'y_pred': scores} or {'image': image_embeds, 'text': text_embeds}\n"
        "- scores: shape (n, n); scores[i, j] is image i against text j, the pair (i, i) is "
        "the correct one\n"
        "- image_embeds, text_embeds: shape (n, d), row i of each is one product; scored by "
        "cosine\n"
        "Image-to-text ranks each row, text-to-image each column; ties count against the "
        "query.\n"
    ),
}

_OUTPUT = {
    "node-classification": (
        "{'acc': acc, 'macro_f1': macro_f1}\n"
        "- acc (float): share of nodes whose predicted class is the true one\n"
        "- macro_f1 (float): F1 averaged over the classes present in y_true or y_pred\n"
    ),
    "link-prediction": (
        "{'mrr': mrr, 'hits@1': hits1, 'hits@3': hits3, 'hits@10': hits10}\n"
        "- mrr (float): mean reciprocal rank of the positives\n"
        "- hits@K (float): share of positives ranked within the top K (rank <= K)\n"
    ),
    "retrieval": (
        "{'n_queries': n, 'i2t': {...}, 't2i': {...}}\n"
        "- i2t / t2i: {'mrr', 'r@1', 'r@5', 'r@10', 'mean_rank', 'median_rank'} (floats) for "
        "image-to-text and text-to-image retrieval\n"
    ),
}


class Evaluator:
    """OGB-style evaluator of one task: ``Evaluator("link-prediction").eval(input_dict)``."""

    def __init__(self, name: str):
        key = str(name).strip().lower().replace("_", "-")
        if key not in TASKS:
            raise ValueError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
        self.name = key

    def __repr__(self) -> str:
        return f"Evaluator({self.name!r})"

    @property
    def expected_input_format(self) -> str:
        return f"==== Expected input format of Evaluator for {self.name}\n" + _INPUT[self.name]

    @property
    def expected_output_format(self) -> str:
        return f"==== Expected output format of Evaluator for {self.name}\n" + _OUTPUT[self.name]

    def eval(self, input_dict: Mapping[str, Any]) -> dict:
        if self.name == "node-classification":
            return classification_metrics(*_require(input_dict, "y_true", "y_pred"))
        if self.name == "link-prediction":
            return link_metrics(*_require(input_dict, "y_pred_pos", "y_pred_neg"))
        return retrieval_metrics(input_dict)
