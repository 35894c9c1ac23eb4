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
from pathlib import Path

import numpy as np
import polars as pl

from pipeline import workdir
from pipeline.graph import k_core, node_table
from pipeline.io import atomic_path, update_stats, write_json

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
) -> pl.DataFrame:
    """(asin, reason) for every candidate node that fails a quality rule.

    Rules are checked in order (item, image, embedding, CLIP-T title, CLIP-T description); a
    node is counted under its first failing rule only.
    """
    items = pl.read_parquet(work / workdir.ITEMS_CLEAN, columns=["asin"]).unique()
    images = pl.read_parquet(work / workdir.IMAGES, columns=["asin", "status"]).unique(
        "asin", keep="first"
    )
    index = pl.read_parquet(work / workdir.CLIP_DIR / "index.parquet", columns=["asin"])
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
    reason = (
        pl.when(pl.col("has_item").is_null())
        .then(pl.lit("no_item"))
        .when(pl.col("status").is_null())
        .then(pl.lit("image_missing"))
        .when(pl.col("status") != "ok")
        .then(pl.lit("image_") + pl.col("status"))
        .when(pl.col("has_emb").is_null())
        .then(pl.lit("no_embedding"))
        .when(low & low_title)
        .then(pl.lit("low_clip_t_title"))
        .when(low)
        .then(pl.lit("low_clip_t_desc"))
    )
    return df.select("asin", reason=reason).filter(pl.col("reason").is_not_null()).sort("asin")


def filter_fixpoint(
    work: Path,
    k: int = 5,
    min_copurchase: int = 3,
    min_clip_t: float | None = None,
    clip_t_percentile: float | None = None,
    clip_t_fields: str = "both",
    max_rounds: int = 100,
) -> dict:
    """Filter the graph of ``work`` to the fixpoint; write work/final/. Returns the stats.

    ``clip_t_fields``: which CLIP-T scores must reach the threshold: "both" (default),
    "title", "desc", or "either" (a node is dropped only when both are low).
    """
    work = Path(work)
    if clip_t_fields not in CLIP_T_FIELDS:
        raise ValueError(f"clip_t_fields must be one of {CLIP_T_FIELDS}, got {clip_t_fields!r}")
    if clip_t_percentile is not None and not 0 <= clip_t_percentile <= 100:
        raise ValueError(f"clip_t_percentile must be in [0, 100], got {clip_t_percentile}")
    if min_clip_t is not None and not math.isfinite(min_clip_t):
        raise ValueError(f"min_clip_t must be a finite number, got {min_clip_t}")
    if k < 1 or min_copurchase < 1:
        raise ValueError("k and min_copurchase must be at least 1")
    clip_dir = work / workdir.CLIP_DIR
    for path in (
        work / workdir.EDGES,
        work / workdir.ITEMS_CLEAN,
        work / workdir.IMAGES,
        clip_dir / "index.parquet",
        clip_dir / "scores.parquet",
    ):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the earlier stages first")

    edges = pl.read_parquet(work / workdir.EDGES, columns=["src_asin", "dst_asin", "weight"])
    edges_in = edges.height
    edges = edges.filter(pl.col("weight") >= min_copurchase)
    edges_kept = edges.height
    candidates = node_table(edges).select("asin")
    scores = pl.read_parquet(clip_dir / "scores.parquet").select(
        "asin", "clip_t_title", "clip_t_desc"
    )
    # Percentiles over the candidate nodes only, computed once (see the module docstring).
    cand_scores = scores.join(candidates, on="asin", how="semi")
    thresholds = clip_t_thresholds(cand_scores, min_clip_t, clip_t_percentile)
    bad = _node_reasons(work, candidates, thresholds, clip_t_fields, scores)
    bad_set = set(bad["asin"].to_list())
    reason_of = dict(zip(bad["asin"].to_list(), bad["reason"].to_list(), strict=True))

    rounds: list[dict] = []
    removed_rows: list[tuple[str, int, str]] = []
    nodes_now = set(candidates["asin"].to_list())
    converged = False
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
            converged = True
            break
    if not converged:
        raise RuntimeError(f"filter did not converge in {max_rounds} rounds")

    edges = edges.sort("src_asin", "dst_asin")
    nodes = node_table(edges)
    # The fixpoint must satisfy every rule at once; fail loudly rather than publish otherwise.
    assert nodes.height == 0 or int(nodes["degree"].min()) >= k
    assert edges.height == 0 or int(edges["weight"].min()) >= min_copurchase
    assert not (set(nodes["asin"].to_list()) & bad_set)
    if nodes.height == 0:
        log.warning("filter: no node survives the quality filters and the %d-core", k)

    removed = pl.DataFrame(
        removed_rows,
        schema={"asin": pl.String, "round": pl.Int64, "reason": pl.String},
        orient="row",
    ).sort("asin")
    totals: dict[str, int] = {}
    for r in removed["reason"].to_list():
        totals[r] = totals.get(r, 0) + 1
    final_dir = work / workdir.FINAL_DIR
    for name, df in (("nodes", nodes), ("edges", edges), ("removed_nodes", removed)):
        with atomic_path(final_dir / f"{name}.parquet") as tmp:
            df.write_parquet(tmp)

    def summarise(col: str) -> dict[str, float | None]:
        v = scores.join(nodes, on="asin", how="semi")[col].to_numpy()
        if not len(v):
            return {"mean": None, "std": None}
        return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4)}

    stats = {
        "params": {
            "k": k,
            "min_copurchase": min_copurchase,
            "min_clip_t": min_clip_t,
            "clip_t_percentile": clip_t_percentile,
            "clip_t_fields": clip_t_fields,
        },
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
    write_json(final_dir / "filter_stats.json", stats)
    update_stats(
        work,
        {
            "filter": {
                key: stats[key]
                for key in (
                    "params",
                    "thresholds",
                    "removed",
                    "removed_by_clip_t",
                    "nodes",
                    "edges",
                )
            }
            | {"rounds": len(rounds)}
        },
    )
    return stats
