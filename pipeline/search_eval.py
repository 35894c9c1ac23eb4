"""The ESCI ranking baseline on a published folder (the ESCI paper's Task 1, as SQID uses
it): rank each query's judged products by CLIP similarity and score the rankings.

Definitions (written once here; the CLI and the report follow them):

- Judgements: the ESCI examples of the selection (``pipeline.sources.esci.EsciSelection``,
  default SQID's: us, small_version = 1, test) whose product is a node of the folder. A query
  is scored when at least ``min_judged`` of its judged products are in the folder (a list of
  one scores 1.0 under every scorer and says nothing).
- Scorers, each the cosine between the query's CLIP text embedding (the folder's own model,
  see ``pipeline.published``) and a product vector: ``image`` (the image embedding),
  ``title`` (the title embedding) and ``fused``, the normalised mean of the two:
  ``normalize(normalize(image) + normalize(title))``. A text-only folder has only ``title``.
- Ranking: score descending, ties broken by node id ascending (deterministic).
- nDCG: over the query's full judged list in the folder (no cutoff, as ESCI Task 1), with
  gains E 1.0, S 0.1, C 0.01, I 0.0 and linear gains: DCG = sum over ranks r = 1..n of
  gain_r / log2(r + 1), nDCG = DCG / DCG of the gain-sorted list. Queries whose judged
  products are all I (ideal DCG 0) are left out of the nDCG mean (counted).
- Recall@K: of the query's exact (E) products in the folder, the share ranked in the top K;
  averaged over the queries with at least one E (others counted).
- ``random`` (a reference row, not a scorer): the mean of both metrics over RANDOM_DRAWS
  seeded random orders, which is what a model that knows nothing scores on these lists
  (high when most judged products are exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.params import param
from pipeline.published import (
    FolderModelParams,
    load_embeds,
    load_folder_model,
    read_manifest,
    read_nodes,
    resolve_published,
)
from pipeline.sources.esci import GAINS, EsciSelection, read_judgements

SCORERS = ("image", "title", "fused")
RANDOM_DRAWS = 20


@dataclass(frozen=True)
class SearchParams:
    """Settings of the ESCI ranking benchmark."""

    k: int = param(10, help="K of Recall@K (exact matches in the top K)")
    min_judged: int = param(
        2, help="score only queries with at least this many judged products in the folder"
    )


def ndcg(gains_in_rank_order: Sequence[float]) -> float | None:
    """nDCG of one ranked list (no cutoff, linear gains); None when every gain is 0."""
    g = np.asarray(gains_in_rank_order, dtype=np.float64)
    disc = 1.0 / np.log2(np.arange(2, len(g) + 2))
    ideal = float(np.sort(g)[::-1] @ disc)
    return None if ideal == 0 else float(g @ disc) / ideal


def _ranks(group: np.ndarray, score: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """1-based rank of every row within its group: score descending, then tiebreak."""
    order = np.lexsort((tiebreak, -score, group))
    g = group[order]
    start = np.searchsorted(g, g, side="left")
    ranks = np.empty(len(group), dtype=np.int64)
    ranks[order] = np.arange(len(group)) - start + 1
    return ranks


def per_query(
    group: np.ndarray,
    gain: np.ndarray,
    score: np.ndarray,
    tiebreak: np.ndarray,
    n_groups: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(nDCG, Recall@k of gain-1 items) per group, NaN where undefined, for judgement rows
    given by their group (query index 0..n_groups-1), gain and score."""
    rank = _ranks(group, score, tiebreak)
    disc = 1.0 / np.log2(rank + 1.0)
    ideal_disc = 1.0 / np.log2(_ranks(group, gain, tiebreak) + 1.0)
    dcg = np.bincount(group, gain * disc, minlength=n_groups)
    idcg = np.bincount(group, gain * ideal_disc, minlength=n_groups)
    exact = gain == GAINS["E"]
    top = rank <= k
    n_exact = np.bincount(group, exact.astype(np.float64), minlength=n_groups)
    hits = np.bincount(group, (exact & top).astype(np.float64), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            np.where(idcg > 0, dcg / idcg, np.nan),
            np.where(n_exact > 0, hits / n_exact, np.nan),
        )


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def product_vectors(image: np.ndarray | None, title: np.ndarray) -> dict[str, np.ndarray]:
    """The product side of every scorer, L2-normalised, row i = node i."""
    t = _normalise(title)
    if image is None:
        return {"title": t}
    i = _normalise(image)
    return {"image": i, "title": t, "fused": _normalise(i + t)}


def row_dots(
    a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray, chunk: int = 1 << 16
) -> np.ndarray:
    """a[ia[j]] . b[ib[j]] for every j, in chunks: never a [judgements, d] matrix at once."""
    out = np.empty(len(ia), dtype=np.float64)
    for s in range(0, len(ia), chunk):
        out[s : s + chunk] = np.einsum("ij,ij->i", a[ia[s : s + chunk]], b[ib[s : s + chunk]])
    return out


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return round(float(x.mean()), 6) if len(x) else None


def evaluate_search(
    folder: str | Path,
    queries: str | Path,
    selection: EsciSelection = EsciSelection(),
    model: FolderModelParams = FolderModelParams(),
    params: SearchParams = SearchParams(),
) -> dict:
    """The benchmark report of one folder (see the module docstring for every definition)."""
    if params.k < 1 or params.min_judged < 1:
        raise UserError("--k and --min-judged must be >= 1")
    folder = resolve_published(folder)
    manifest = read_manifest(folder)
    nodes = read_nodes(folder, ("asin",))
    judged, esci_stats = read_judgements(queries, nodes["asin"].to_list(), selection)
    sizes = judged.group_by("query_id").len()
    keep = sizes.filter(sizes["len"] >= params.min_judged)["query_id"]
    used = judged.filter(judged["query_id"].is_in(keep.implode()))
    if not used.height:
        raise UserError(
            f"no ESCI query has {params.min_judged} or more judged products in {folder} "
            f"({esci_stats['judgements_in_folder']} judgements of the selection "
            f"{esci_stats['selection']} are in the folder)"
        )
    qs = used.select("query_id", "query").unique("query_id", keep="first").sort("query_id")
    used = used.join(qs.select("query_id").with_row_index("group"), on="query_id").sort(
        "group", "node_id"
    )
    group = used["group"].to_numpy().astype(np.int64)
    node = used["node_id"].to_numpy().astype(np.int64)
    gain = used["gain"].to_numpy().astype(np.float64)

    title = load_embeds(folder, "title", nodes.height)
    if title is None:
        raise UserError(f"{folder}/embeddings/title_embeds.npy is missing")
    image = load_embeds(folder, "image", nodes.height)
    # Only the judged products' rows: a category has 100k nodes, ESCI judges a few of them.
    judged_nodes, row = np.unique(node, return_inverse=True)
    vectors = product_vectors(None if image is None else image[judged_nodes], title[judged_nodes])
    cm, spec = load_folder_model(folder, model)
    from pipeline.clip import encode_texts

    q = _normalise(encode_texts(cm, qs["query"].to_list()))
    scorers = {}
    ndcg_n = recall_n = 0
    for name, vec in vectors.items():
        score = row_dots(q, group, vec, row)
        nd, rec = per_query(group, gain, score, node, qs.height, params.k)
        scorers[name] = {"ndcg": _mean(nd), f"recall@{params.k}": _mean(rec)}
        ndcg_n, recall_n = int((~np.isnan(nd)).sum()), int((~np.isnan(rec)).sum())
    rng = np.random.default_rng(0)
    draws = [per_query(group, gain, rng.random(len(group)), node, qs.height, params.k)
             for _ in range(RANDOM_DRAWS)]  # fmt: skip
    reference = {
        "ndcg": _mean(np.mean([d[0] for d in draws], axis=0)),
        f"recall@{params.k}": _mean(np.mean([d[1] for d in draws], axis=0)),
    }
    return {
        "folder": {"category": manifest.get("category"), "version": manifest.get("version")},
        "model": spec,
        "esci": esci_stats,
        "metric": {
            "gains": GAINS,
            "ndcg": "full judged list in the folder, linear gains, log2(rank + 1) discount",
            "k": params.k,
            "min_judged": params.min_judged,
            "fused": "normalize(normalize(image) + normalize(title))",
            "ties": "node id ascending",
        },
        "queries": qs.height,
        "judgements": used.height,
        "queries_skipped_min_judged": int(sizes.height - keep.len()),
        "queries_in_ndcg": ndcg_n,
        "queries_in_recall": recall_n,
        "scorers": scorers,
        "random": reference,
    }


def format_table(report: dict) -> str:
    """The report's scores as a small text table."""
    k = report["metric"]["k"]

    def cell(v: float | None) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    sel = report["esci"]["selection"]
    lines = [f"{'scorer':<8} {'nDCG':>8} {'Recall@' + str(k):>10}"]
    for name, m in [*report["scorers"].items(), ("random", report["random"])]:
        lines.append(f"{name:<8} {cell(m['ndcg']):>8} {cell(m[f'recall@{k}']):>10}")
    lines.append(
        f"{report['queries']} queries, {report['judgements']} judgements "
        f"(ESCI {sel['locale']}/{sel['version']}/{sel['split']}; nDCG over "
        f"{report['queries_in_ndcg']} queries, Recall@{k} over {report['queries_in_recall']})"
    )
    return "\n".join(lines)


__all__ = ["SCORERS", "SearchParams", "evaluate_search", "format_table", "ndcg", "per_query"]
