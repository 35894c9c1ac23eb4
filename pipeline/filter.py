"""Quality filter fixpoint: drop bad nodes, recompute the k-core, repeat until stable.

A node is dropped when it has no clean item row, its image status is not "ok", it has no
CLIP embedding, or its CLIP-T (title and/or description) is below the threshold. Dropping
nodes lowers their neighbours' degrees, so the k-core is recomputed; the loop runs until a
round changes nothing, so the result satisfies every rule at once.

The CLIP-T threshold is fixed before the loop (an absolute value, or a percentile computed
once over the candidate nodes and then used as an absolute value): a percentile recomputed
on a shrinking graph would keep cutting and never converge.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline import workdir
from pipeline.errors import StageError
from pipeline.graph import k_core, node_table
from pipeline.io import atomic_path, write_json
from pipeline.modality import text_only
from pipeline.params import param
from pipeline.resources import Resources

log = logging.getLogger(__name__)

CLIP_T_FIELDS = ("both", "title", "desc", "either")
_SCORE_COLS = {"title": "clip_t_title", "desc": "clip_t_desc"}


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def clip_t_thresholds(
    scores: pl.DataFrame, min_clip_t: float | None, clip_t_percentile: float | None
) -> dict[str, float | None]:
    """Absolute threshold per field (title, desc): the larger of ``min_clip_t`` and the
    ``clip_t_percentile``-th percentile of ``scores`` (the candidate nodes); None = no cut."""
    out: dict[str, float | None] = {}
    for name, col in _SCORE_COLS.items():
        cuts = []
        if min_clip_t is not None:
            cuts.append(float(min_clip_t))
        if clip_t_percentile is not None:
            p = _percentile(scores[col].drop_nulls().to_numpy(), clip_t_percentile)
            if p is not None:
                cuts.append(p)
        out[name] = max(cuts) if cuts else None
    return out


def _node_reasons(
    work: Path,
    candidates: pl.DataFrame,
    thresholds: dict[str, float | None],
    clip_t_fields: str,
    scores: pl.DataFrame,
    need_image: bool = True,
) -> pl.DataFrame:
    """(asin, reason) for every candidate node that fails a quality rule.

    Rules are checked in order (item, image, embedding, CLIP-T title, CLIP-T description); a
    node is counted under its first failing rule only.
    """
    items = pl.read_parquet(workdir.items(work), columns=["asin"]).unique()
    images = pl.read_parquet(work / workdir.IMAGES, columns=["asin", "status"]).unique(
        "asin", keep="first"
    )
    index = pl.read_parquet(work / workdir.CLIP_INDEX, columns=["asin"])
    df = (
        candidates.join(items.with_columns(has_item=pl.lit(True)), on="asin", how="left")
        .join(images, on="asin", how="left")
        .join(index.with_columns(has_emb=pl.lit(True)), on="asin", how="left")
        .join(scores, on="asin", how="left")
    )
    title_t, desc_t = thresholds["title"], thresholds["desc"]
    low_title = (
        pl.col("clip_t_title") < title_t if title_t is not None else pl.lit(False)
    ).fill_null(False)
    low_desc = (pl.col("clip_t_desc") < desc_t if desc_t is not None else pl.lit(False)).fill_null(
        False
    )
    low = {
        "both": low_title | low_desc,  # both must pass
        "title": low_title,
        "desc": low_desc,
        "either": low_title & low_desc,  # one passing is enough
    }[clip_t_fields]
    # A text-only build (pipeline/modality.py): no image rule (its status never fails).
    status = pl.col("status") if need_image else pl.lit("ok")
    reason = (
        pl.when(pl.col("has_item").is_null())
        .then(pl.lit("no_item"))
        .when(status.is_null())
        .then(pl.lit("image_missing"))
        .when(status != "ok")
        .then(pl.lit("image_") + pl.col("status"))
        .when(pl.col("has_emb").is_null())
        .then(pl.lit("no_embedding"))
        .when(low & low_title)
        .then(pl.lit("low_clip_t_title"))
        .when(low)
        .then(pl.lit("low_clip_t_desc"))
    )
    return df.select("asin", reason=reason).filter(pl.col("reason").is_not_null()).sort("asin")


@dataclass(frozen=True)
class FilterParams:
    k: int = param(5, "k of the k-core")
    min_copurchase: int = param(3, "keep edges with at least this many co-purchasing users")
    min_clip_t: float | None = param(
        15.0, "drop nodes whose CLIP-T (100 x cosine) is below X; none: no floor", metavar="X"
    )
    clip_t_percentile: float | None = param(
        5.0,
        "drop nodes below the P-th percentile of CLIP-T over the candidate nodes (computed "
        "once, then used as an absolute threshold); none: no percentile cut",
        metavar="P",
    )
    clip_t_fields: str = param(
        "both",
        "which CLIP-T must pass: title and description (both), one of them, or either",
        choices=CLIP_T_FIELDS,
    )
    max_rounds: int = param(100, "give up when the fixpoint takes more rounds", cli=False)

    def __post_init__(self) -> None:
        if self.clip_t_fields not in CLIP_T_FIELDS:
            raise StageError(f"clip_t_fields must be one of {CLIP_T_FIELDS}")
        if self.clip_t_percentile is not None and not 0 <= self.clip_t_percentile <= 100:
            raise StageError(f"clip_t_percentile must be in [0, 100], got {self.clip_t_percentile}")
        if self.min_clip_t is not None and not math.isfinite(self.min_clip_t):
            raise StageError(f"min_clip_t must be a finite number, got {self.min_clip_t}")
        if self.k < 1 or self.min_copurchase < 1:
            raise StageError("k and min_copurchase must be at least 1")


def filter_fixpoint(
    work: Path, p: FilterParams = FilterParams(), res: Resources = Resources()
) -> dict:
    """Filter the graph of ``work`` to the fixpoint; write work/final/. Returns the summary
    (the full per-round record is final/filter_stats.json)."""
    work = Path(work)
    for rel in (workdir.EDGES, workdir.IMAGES, workdir.CLIP_INDEX, workdir.CLIP_SCORES):
        workdir.require(work / rel, "input (run the earlier stages first)")
    edges = pl.read_parquet(work / workdir.EDGES, columns=["src_asin", "dst_asin", "weight"])
    edges_in = edges.height
    edges = edges.filter(pl.col("weight") >= p.min_copurchase)
    edges_kept = edges.height
    candidates = node_table(edges).select("asin")
    scores = pl.read_parquet(work / workdir.CLIP_SCORES).select(
        "asin", "clip_t_title", "clip_t_desc"
    )
    # Percentiles over the candidate nodes only, computed once (see the module docstring).
    cand_scores = scores.join(candidates, on="asin", how="semi")
    no_images = text_only(work)
    if no_images:  # no image to compare the texts with: no CLIP-T cut
        thresholds: dict[str, float | None] = {"title": None, "desc": None}
        rule = "text-only: no image rule and no CLIP-T cut (no image to compare the texts with)"
    else:
        thresholds = clip_t_thresholds(cand_scores, p.min_clip_t, p.clip_t_percentile)
        rule = f"image status ok and CLIP-T ({p.clip_t_fields}) above the thresholds"
    bad = _node_reasons(work, candidates, thresholds, p.clip_t_fields, scores, not no_images)
    edges, rounds, removed_rows = _fixpoint(edges, candidates, bad, p.k, p.max_rounds)

    edges = edges.sort("src_asin", "dst_asin")
    nodes = node_table(edges)
    # The fixpoint must satisfy every rule at once; fail loudly rather than publish otherwise.
    assert nodes.height == 0 or int(nodes["degree"].min()) >= p.k
    assert edges.height == 0 or int(edges["weight"].min()) >= p.min_copurchase
    assert not (set(nodes["asin"].to_list()) & set(bad["asin"].to_list()))
    if nodes.height == 0:
        log.warning("filter: no node survives the quality filters and the %d-core", p.k)

    removed = pl.DataFrame(
        removed_rows,
        schema={"asin": pl.String, "round": pl.Int64, "reason": pl.String},
        orient="row",
    ).sort("asin")
    for rel, df in (
        (workdir.FINAL_NODES, nodes),
        (workdir.FINAL_EDGES, edges),
        (workdir.FINAL_REMOVED, removed),
    ):
        with atomic_path(work / rel) as tmp:
            df.write_parquet(tmp)
    totals = Counter(removed["reason"].to_list())

    def summarise(col: str) -> dict[str, float | None]:
        v = scores.join(nodes, on="asin", how="semi")[col].drop_nulls().to_numpy()
        if not len(v):
            return {"mean": None, "std": None}
        return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4)}

    stats = {
        "params": {
            "k": p.k,
            "min_copurchase": p.min_copurchase,
            "min_clip_t": p.min_clip_t,
            "clip_t_percentile": p.clip_t_percentile,
            "clip_t_fields": p.clip_t_fields,
        },
        "rule": rule,
        "thresholds": {"clip_t_title": thresholds["title"], "clip_t_desc": thresholds["desc"]},
        "input": {
            "edges": edges_in,
            "edges_min_copurchase": edges_kept,
            "nodes": candidates.height,
        },
        "rounds": rounds,
        "removed": dict(sorted(totals.items())),
        "removed_by_clip_t": totals.get("low_clip_t_title", 0) + totals.get("low_clip_t_desc", 0),
        "nodes": nodes.height,
        "edges": edges.height,
        "clip_t_title": summarise("clip_t_title"),
        "clip_t_desc": summarise("clip_t_desc"),
    }
    write_json(work / workdir.FILTER_STATS, stats)
    summary = ("params", "rule", "thresholds", "removed", "removed_by_clip_t", "nodes", "edges")
    return {key: stats[key] for key in summary} | {"rounds": len(rounds)}


def _fixpoint(
    edges: pl.DataFrame, candidates: pl.DataFrame, bad: pl.DataFrame, k: int, max_rounds: int
) -> tuple[pl.DataFrame, list[dict], list[tuple[str, int, str]]]:
    """Drop the bad nodes, then the k-core, until a round changes nothing: (edges, the
    rounds, the removed (asin, round, reason) rows)."""
    bad_set = set(bad["asin"].to_list())
    reason_of = dict(zip(bad["asin"].to_list(), bad["reason"].to_list(), strict=True))
    rounds: list[dict] = []
    removed_rows: list[tuple[str, int, str]] = []
    nodes_now = set(candidates["asin"].to_list())
    for rnd in range(1, max_rounds + 1):
        # Quality rules first: drop the bad nodes still present with their edges.
        drop = sorted(nodes_now & bad_set)
        quality_counts: dict[str, int] = {}
        for a in drop:
            quality_counts[reason_of[a]] = quality_counts.get(reason_of[a], 0) + 1
            removed_rows.append((a, rnd, reason_of[a]))
        if drop:
            gone = pl.DataFrame({"asin": drop}, schema={"asin": pl.String})
            edges = edges.join(gone, left_on="src_asin", right_on="asin", how="anti").join(
                gone, left_on="dst_asin", right_on="asin", how="anti"
            )
        # Then the k-core; nodes that lost all their edges leave the graph here too.
        edges = k_core(edges, k)
        after = set(node_table(edges)["asin"].to_list())
        kcore_drop = sorted(nodes_now - set(drop) - after)
        removed_rows.extend((a, rnd, "kcore") for a in kcore_drop)
        rounds.append(
            {
                "round": rnd,
                "removed_quality": quality_counts,
                "removed_kcore": len(kcore_drop),
                "nodes": len(after),
                "edges": edges.height,
            }
        )
        log.info(
            "filter round %d: %d bad nodes, %d by the %d-core -> %d nodes, %d edges",
            rnd, len(drop), len(kcore_drop), k, len(after), edges.height,
        )  # fmt: skip
        nodes_now = after
        if not drop and not kcore_drop:
            return edges, rounds, removed_rows
    raise StageError(f"filter did not converge in {max_rounds} rounds")
