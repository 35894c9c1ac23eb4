"""Leak-free link-prediction splits with fixed negatives: ``edge_splits.parquet``.

The rules (what the dataset card states):

1. Positives are the undirected edges, deduplicated: a pair and its reverse are one edge,
   stored once as (src, dst) with src < dst. Self-loops are refused.
2. Every edge gets exactly one split, train / val / test in ``ratios`` (default 80/10/10,
   rounded, test takes the remainder), by the order of a hash of (seed, src, dst): the same
   edges and seed give the same split on every machine and numpy version, and an edge keeps
   its split when others are added or removed (only the cut points move), as the node splits
   do (``pipeline.splits``). Since an edge and its reverse are one row, a val or test edge
   and its reverse are both absent from the training graph. (Only in tiny dense graphs: an
   edge both of whose endpoints are adjacent to every node has no possible negative and is
   moved to train, with a logged count.)
3. The training graph is the train positives only, in both directions; val and test edges
   are excluded from it (OGB's ogbl-ppa / ogbl-citation2 convention). Models fit and select
   on the training graph; when scoring test edges a model may add the val positives to its
   input graph (as ogbl-collab allows), never the test ones.
4. Every val and test positive has exactly ``negatives`` fixed negatives (q, v): its query
   node q, the endpoint with more non-neighbours (src on a tie, so in large graphs usually
   the lower-degree end), with a corrupted partner v, as ogbl-citation2 corrupts one end.
   A negative is never an edge of the whole graph (any split, either direction), never q
   itself, never repeated for one positive. When some query node has fewer non-neighbours
   than ``negatives`` (small dense graphs only), every positive gets that smaller number;
   ``edge_split_counts`` reports it. Train rows have no negatives (sample them in training).
5. ``round(negatives * hard_fraction)`` of them are hard: v is at distance exactly 2 from q
   in the training graph (a random neighbour w of q, then a random neighbour v of w, kept
   when v is not adjacent to q in the whole graph). The others, and any hard slot for which
   16 such walks find nothing (q has no training neighbour, or its 2-hop ball is all
   neighbours), are uniform over all nodes. All draws come from hashes of (seed, src, dst,
   slot, attempt), so every positive's negatives are fixed and independent of the others.
6. Columns: ``src, dst`` (int64 node ids: src < dst for positives, (q, v) for negatives),
   ``split`` ("train" | "val" | "test", the names of splits.parquet), ``label`` (int8: 1
   positive, 0 negative), ``query`` (int64: the positive the row is ranked with, numbered
   from 0 within its split in (src, dst) order), ``hard`` (bool: a 2-hop negative). Rows are
   sorted by split, query, label (the positive first), then dst, so within a split the
   label-1 rows give ``y_pred_pos`` [n] and the label-0 rows, reshaped, ``y_pred_neg``
   [n, negatives] of ``acmmg.Evaluator("link-prediction")``.

Everything is vectorised numpy (no Python loop per edge; the 2-hop draws walk a CSR of the
training graph, A^2 is never formed) and the negatives are drawn a chunk of positives at a
time, so memory is the output table plus a few arrays of the edge count.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import UserError
from pipeline.params import param
from pipeline.splits import SPLIT_NAMES, split_sizes
from pipeline.tasks.hashing import U64, mix, salt

log = logging.getLogger(__name__)

DEFAULT_EDGE_RATIOS = (0.8, 0.1, 0.1)
DEFAULT_NEGATIVES = 50
DEFAULT_HARD_FRACTION = 0.5
HARD_ATTEMPTS = 16  # 2-hop walks per hard slot before it takes a uniform negative
UNIFORM_ATTEMPTS = 32  # uniform draws per slot before the exhaustive fallback
CHUNK = 1 << 16  # positives per negative-sampling chunk (bounds the temporaries)

SCHEMA = pa.schema(
    [
        ("src", pa.int64()),
        ("dst", pa.int64()),
        ("split", pa.string()),
        ("label", pa.int8()),
        ("query", pa.int64()),
        ("hard", pa.bool_()),
    ]
)


@dataclasses.dataclass(frozen=True)
class EdgeSplitParams:
    """Settings of the link-prediction splits (the seed is the node splits' seed)."""

    edge_ratios: tuple[float, float, float] = param(
        DEFAULT_EDGE_RATIOS, help="train / val / test shares of the undirected edges"
    )
    negatives: int = param(DEFAULT_NEGATIVES, help="fixed negatives per val / test positive")
    hard_fraction: float = param(
        DEFAULT_HARD_FRACTION,
        help="share of those negatives drawn at distance 2 in the training graph",
    )


# ---------------------------------------------------------------------------- hashing

_LOW32 = U64(0xFFFFFFFF)
_SPLIT_STREAM, _NEG_STREAM = 1, 2


def _below(h: np.ndarray, n: np.ndarray) -> np.ndarray:
    """h mod n as int64 (uint64 mixed with int64 would promote to float64)."""
    return (h % n.astype(np.uint64)).astype(np.int64)


def _pair_keys(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (lo.astype(np.uint64) << U64(32)) | hi.astype(np.uint64)


# ------------------------------------------------------------------------------ edges


def canonical_edges(src: Sequence[int], dst: Sequence[int], n_nodes: int) -> np.ndarray:
    """Sorted unique keys (lo << 32 | hi) of the undirected edges; UserError on bad ids."""
    s = np.asarray(src, dtype=np.int64)
    d = np.asarray(dst, dtype=np.int64)
    if s.ndim != 1 or s.shape != d.shape:
        raise UserError(f"src and dst must be two 1-D arrays of one length: {s.shape}, {d.shape}")
    if not 0 < n_nodes < 1 << 31:
        raise UserError(f"n_nodes must be between 1 and 2^31 - 1, got {n_nodes}")
    if s.size and (min(s.min(), d.min()) < 0 or max(s.max(), d.max()) >= n_nodes):
        raise UserError(f"edge endpoints must be node ids in [0, {n_nodes})")
    loops = int(np.count_nonzero(s == d))
    if loops:
        raise UserError(f"{loops} self-loop(s) among the edges: a node cannot be its own pair")
    keys = np.sort(_pair_keys(np.minimum(s, d), np.maximum(s, d)))
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys
    if keys.size < s.size:
        log.info("edge splits: %d duplicate or reversed edge rows merged", s.size - keys.size)
    return keys


def _unpack(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (keys >> U64(32)).astype(np.int64), (keys & _LOW32).astype(np.int64)


def assign_splits(
    keys: np.ndarray, seed: int, ratios: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) keys, each sorted: the cut of the edges ordered by hash (rule 2)."""
    n_train, n_val, _ = split_sizes(keys.size, ratios)
    h = mix(keys ^ salt(seed, _SPLIT_STREAM))
    order = np.lexsort((keys, h))  # by hash; the key breaks (impossible) ties
    parts = np.split(keys[order], [n_train, n_train + n_val])
    return tuple(np.sort(p) for p in parts)  # type: ignore[return-value]


class _Graphs:
    """The whole graph's edge set (membership) and the training graph's CSR (walks)."""

    def __init__(self, all_keys: np.ndarray, train_keys: np.ndarray, n_nodes: int):
        self.n = n_nodes
        self.keys = all_keys
        # Both directions as u << 32 | v: the candidates of one query node then look up
        # neighbouring entries (cache-friendly), where canonical keys would scatter.
        lo, hi = _unpack(all_keys)
        self.directed = np.sort(np.concatenate([all_keys, _pair_keys(hi, lo)]))
        lo, hi = _unpack(train_keys)
        u, v = np.concatenate([lo, hi]), np.concatenate([hi, lo])
        order = np.lexsort((v, u))
        self.indices = v[order]
        self.deg = np.bincount(u, minlength=n_nodes).astype(np.int64)
        self.indptr = np.concatenate([[0], np.cumsum(self.deg)])

    def is_edge(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        k = _pair_keys(u, v)
        pos = np.searchsorted(self.directed, k)
        return self.directed[np.minimum(pos, self.directed.size - 1)] == k

    def walk2(self, u: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Endpoint of a 2-step walk from each u (which must have a training neighbour),
        steps chosen by the low and high 32 bits of h."""
        w = self.indices[self.indptr[u] + _below(h & _LOW32, self.deg[u])]
        return self.indices[self.indptr[w] + _below(h >> U64(32), self.deg[w])]

    def non_neighbours(self, u: int) -> np.ndarray:
        lo, hi = _unpack(self.keys)
        taken = np.zeros(self.n, dtype=bool)
        taken[hi[lo == u]] = True
        taken[lo[hi == u]] = True
        taken[u] = True
        return np.flatnonzero(~taken)


# -------------------------------------------------------------------------- negatives


def _keep_new(out: np.ndarray, rows: np.ndarray, cand: np.ndarray, n: int) -> np.ndarray:
    """Mask of the candidates that their row does not hold yet (nor an earlier candidate);
    ``rows`` ascending."""
    urows = rows[np.concatenate([[True], rows[1:] != rows[:-1]])] if rows.size else rows
    held = out[urows]
    held_rows = np.repeat(urows, out.shape[1])[held.ravel() >= 0]
    held_keys = held_rows * n + held.ravel()[held.ravel() >= 0]
    _, first = np.unique(np.concatenate([held_keys, rows * n + cand]), return_index=True)
    keep = np.zeros(cand.size, dtype=bool)
    keep[first[first >= held_keys.size] - held_keys.size] = True
    return keep


def _draw(
    g: _Graphs,
    q: np.ndarray,
    base: np.ndarray,
    out: np.ndarray,
    hard: np.ndarray,
    slots: slice,
    attempts: int,
    two_hop: bool,
) -> None:
    """Fill the empty slots ``slots`` of ``out`` (rows: positives with query nodes q)."""
    k = out.shape[1]
    for attempt in range(attempts):
        rows, cols = np.nonzero(out[:, slots] < 0)
        cols = cols + (slots.start or 0)
        if two_hop:
            walkable = g.deg[q[rows]] > 0
            rows, cols = rows[walkable], cols[walkable]
        if rows.size == 0:
            return
        h = mix(base[rows] ^ mix((cols + k * attempt).astype(np.uint64) + U64(two_hop << 40)))
        u = q[rows]
        v = g.walk2(u, h) if two_hop else _below(h, np.full(h.size, g.n))
        ok = (v != u) & ~g.is_edge(u, v)
        rows, cols, v = rows[ok], cols[ok], v[ok]
        new = _keep_new(out, rows, v, g.n)
        out[rows[new], cols[new]] = v[new]
        hard[rows[new], cols[new]] = two_hop


def _exhaustive(g: _Graphs, q: np.ndarray, base: np.ndarray, out: np.ndarray, seed: int) -> None:
    """Last resort for the few rows uniform draws could not fill (nodes adjacent to nearly
    everything): their remaining non-neighbours in hash order."""
    for r in np.flatnonzero((out < 0).any(axis=1)):
        u, empty = int(q[r]), np.flatnonzero(out[r] < 0)
        cand = np.setdiff1d(g.non_neighbours(u), out[r][out[r] >= 0])
        if cand.size < empty.size:
            raise UserError(
                f"node {u} has {cand.size + out.shape[1] - empty.size} non-neighbours: too few "
                f"for {out.shape[1]} negatives per positive (lower the negatives setting)"
            )
        order = np.argsort(mix(cand.astype(np.uint64) ^ base[r] ^ salt(seed)), kind="stable")
        out[r, empty] = cand[order[: empty.size]]


def sample_negatives(
    g: _Graphs,
    pos_keys: np.ndarray,
    query: np.ndarray,
    seed: int,
    negatives: int,
    hard_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """([P, negatives] partner ids, [P, negatives] hard flags) of the positives, whose query
    nodes are ``query``; each row sorted by id (rules 4 and 5)."""
    n_hard = int(round(negatives * hard_fraction))
    base_all = mix(pos_keys ^ salt(seed, _NEG_STREAM))
    neg = np.empty((pos_keys.size, negatives), dtype=np.int64)
    hard = np.empty((pos_keys.size, negatives), dtype=bool)
    for s in range(0, pos_keys.size, CHUNK):
        q, base = query[s : s + CHUNK], base_all[s : s + CHUNK]
        out = np.full((q.size, negatives), -1, dtype=np.int64)
        hd = np.zeros((q.size, negatives), dtype=bool)
        _draw(g, q, base, out, hd, slice(0, n_hard), HARD_ATTEMPTS, two_hop=True)
        _draw(g, q, base, out, hd, slice(0, negatives), UNIFORM_ATTEMPTS, two_hop=False)
        _exhaustive(g, q, base, out, seed)
        order = np.argsort(out, axis=1)
        neg[s : s + CHUNK] = np.take_along_axis(out, order, axis=1)
        hard[s : s + CHUNK] = np.take_along_axis(hd, order, axis=1)
    return neg, hard


def non_neighbour_counts(keys: np.ndarray, n_nodes: int) -> np.ndarray:
    """How many nodes each node is not adjacent to (itself excluded)."""
    lo, hi = _unpack(keys)
    return n_nodes - 1 - np.bincount(np.concatenate([lo, hi]), minlength=n_nodes)


def query_nodes(keys: np.ndarray, room: np.ndarray) -> np.ndarray:
    """The endpoint of each edge whose partner is replaced by negatives: the one with more
    non-neighbours (src on a tie), so hubs of small dense graphs still get negatives."""
    lo, hi = _unpack(keys)
    return np.where(room[hi] > room[lo], hi, lo)


def _rankable(
    parts: tuple[np.ndarray, np.ndarray, np.ndarray], room: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Val / test edges both of whose endpoints are adjacent to every node have no negative:
    they join train (rule 2's exception), counted in the log."""
    train, *held = parts
    out = []
    for part in held:
        lo, hi = _unpack(part)
        stuck = (room[lo] == 0) & (room[hi] == 0)
        if stuck.any():
            log.warning(
                "edge splits: %d held-out edge(s) join nodes adjacent to every other node "
                "(no negative exists for them): moved to train",
                int(stuck.sum()),
            )
            train = np.sort(np.concatenate([train, part[stuck]]))
        out.append(part[~stuck])
    return train, out[0], out[1]


def feasible_negatives(eval_queries: np.ndarray, room: np.ndarray, negatives: int) -> int:
    """``negatives``, or fewer when some val / test query node has fewer non-neighbours (a
    small dense graph): every positive gets the same count, so y_pred_neg stays [n, k]."""
    if eval_queries.size == 0:
        return negatives
    tightest = int(eval_queries[np.argmin(room[eval_queries])])
    k = min(negatives, int(room[tightest]))
    if k < negatives:
        log.warning(
            "edge splits: node %d has only %d non-neighbours, so every positive gets %d "
            "negatives instead of %d",
            tightest,
            k,
            k,
            negatives,
        )
    return k


def _split_column(codes: np.ndarray) -> pa.Array:
    names = pa.array(list(SPLIT_NAMES), type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int8()), names).cast(pa.string())


def edge_splits(
    src: Sequence[int],
    dst: Sequence[int],
    n_nodes: int,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_EDGE_RATIOS,
    negatives: int = DEFAULT_NEGATIVES,
    hard_fraction: float = DEFAULT_HARD_FRACTION,
) -> pa.Table:
    """The link-prediction table of the undirected graph (src[i], dst[i]) over ``n_nodes``
    nodes, by the rules of this module's docstring; deterministic in its arguments."""
    if negatives < 1:
        raise UserError(f"negatives must be at least 1, got {negatives}")
    if not 0.0 <= hard_fraction <= 1.0:
        raise UserError(f"hard_fraction must be between 0 and 1, got {hard_fraction}")
    try:
        keys = canonical_edges(src, dst, n_nodes)
        parts = assign_splits(keys, seed, ratios)
    except ValueError as e:  # split_sizes' message on bad ratios
        raise UserError(f"edge splits: {e}") from None
    room = non_neighbour_counts(keys, n_nodes)
    parts = _rankable(parts, room)
    queries = [query_nodes(p, room) for p in parts]
    negatives = feasible_negatives(np.concatenate(queries[1:]), room, negatives)
    g = _Graphs(keys, parts[0], n_nodes)
    cols: dict[str, list[np.ndarray]] = {name: [] for name in SCHEMA.names}
    for code, (part, q) in enumerate(zip(parts, queries, strict=True)):
        lo, hi = _unpack(part)
        p = part.size
        if code == 0:  # train: positives only
            k, src_rows, dst_rows, hard_rows = 0, lo, hi, np.zeros(p, dtype=bool)
        else:
            neg, hard = sample_negatives(g, part, q, seed, negatives, hard_fraction)
            k = negatives
            src_rows = np.concatenate([lo[:, None], np.repeat(q[:, None], k, axis=1)], axis=1)
            dst_rows = np.concatenate([hi[:, None], neg], axis=1)
            hard_rows = np.concatenate([np.zeros((p, 1), dtype=bool), hard], axis=1)
        cols["src"].append(src_rows.ravel())
        cols["dst"].append(dst_rows.ravel())
        cols["split"].append(np.full(p * (k + 1), code, dtype=np.int8))
        cols["label"].append(np.tile(np.array([1] + [0] * k, dtype=np.int8), p))
        cols["query"].append(np.repeat(np.arange(p, dtype=np.int64), k + 1))
        cols["hard"].append(hard_rows.ravel())
    arrays = {name: np.concatenate(c) for name, c in cols.items()}
    split = _split_column(arrays.pop("split"))
    table = pa.table({**arrays, "split": split}).select(SCHEMA.names)
    return table.cast(SCHEMA)


def edge_split_counts(table: pa.Table) -> dict[str, int | float]:
    """Counts for the card and the manifest: positives per split, negatives per positive,
    hard negatives and their share."""
    out: dict[str, int | float] = {}
    label, split = table["label"], table["split"]
    for name in SPLIT_NAMES:
        mask = pc.and_(pc.equal(split, name), pc.equal(label, 1))
        out[f"{name}_edges"] = int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
    n_neg = table.num_rows - sum(out[f"{s}_edges"] for s in SPLIT_NAMES)
    evaluated = out["val_edges"] + out["test_edges"]
    out["negatives_per_positive"] = n_neg // evaluated if evaluated else 0
    n_hard = int(pc.sum(table["hard"].cast(pa.int64())).as_py() or 0)
    out["hard_negatives"] = n_hard
    out["hard_share"] = round(n_hard / n_neg, 4) if n_neg else 0.0
    return out
