"""What a build did, for a person: the run summary (markdown) and the card's statistics row.

Pure functions of the stage results, the merged stats and the assembled manifest; the flow
turns them into Prefect artifacts, ``acmmg build`` could print them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import workdir
from pipeline.io import read_json


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _did(name: str, result: Any) -> str:
    """The few counts that say what a stage did."""
    if not isinstance(result, dict):
        return ""
    keys = {
        "fetch": (),
        "ingest": ("reviews_read", "reviews_rejected", "reviews_kept", "items_in_metadata"),
        "clean": ("items_usable", "items_unusable"),
        "graph": ("users", "items", "pairs_kept", "nodes", "edges"),
        "images": ("candidates", "ok", "placeholder", "failed_total"),
        "embed": ("embedded", "embed_dim"),
        "filter": ("removed_by_clip_t", "nodes", "edges", "rounds"),
        "classes": ("level", "num_classes", "balance"),
        "relations": ("k", "users_clustered", "edges"),
        "assemble": ("nodes", "edges", "classes", "images"),
        "publish": ("version",),
    }.get(name, ())
    if name == "fetch":
        return f"{sum(len(v) for v in result.values() if isinstance(v, list))} dumps"
    return ", ".join(f"{k} {_fmt(result[k])}" for k in keys if k in result)


def _rejects(stats: dict) -> list[str]:
    out = []
    if stats.get("reviews_rejected"):
        out.append(
            f"reviews rejected: {stats['reviews_rejected']:,} {stats.get('rejected_by_reason', {})}"
        )
    if stats.get("items_rejected"):
        out.append(f"metadata lines rejected: {stats['items_rejected']:,}")
    clean = stats.get("clean", {})
    if clean.get("items_unusable"):
        out.append(
            f"items unusable: {clean['items_unusable']:,} {clean.get('items_unusable_by_reason', {})}"
        )
    images = stats.get("images", {})
    if images.get("failed_total") or images.get("placeholder"):
        out.append(
            f"images failed: {images.get('failed_total', 0):,} {images.get('failed', {})}; "
            f"placeholders: {images.get('placeholder', 0):,}"
        )
    removed = stats.get("filter", {}).get("removed")
    if removed:
        out.append(f"nodes removed by the quality filter: {removed}")
    return out


def card_link(target: str, slug: str, version: str) -> str:
    """Where the published card of ``version`` is."""
    if target.startswith("hf://"):
        return f"https://huggingface.co/datasets/{target[len('hf://datasets/') :].rstrip('/')}"
    base = target.rstrip("/")
    return f"{base}/{slug}/versions/{version}/README.md"


def run_summary(
    slug: str,
    results: dict[str, Any],
    cached: dict[str, bool],
    seconds: dict[str, float],
    titles: dict[str, str],
    work: Path,
) -> str:
    """The markdown summary of one build run."""
    pub = results.get("publish", {})
    version, target = pub.get("version", "?"), pub.get("target", "?")
    where = (
        f"unchanged, nothing uploaded (already at `{target}`)"
        if pub.get("uploaded") is False
        else f"published to `{target}`"
    )
    lines = [
        f"# {slug}: version `{version}`",
        "",
        f"{where}; [dataset card]({card_link(target, slug, version)})",
        "",
        "| stage | state | seconds | what it did |",
        "|---|---|---:|---|",
    ]
    for name, result in results.items():
        state = "cached" if cached.get(name) else "done"
        lines.append(
            f"| {titles.get(name, name)} | {state} | {seconds.get(name, 0.0):.1f} | "
            f"{_did(name, result)} |"
        )
    stats = _merged(work)
    rejects = _rejects(stats)
    if rejects:
        lines += ["", "## Rejected or dropped", "", *(f"- {r}" for r in rejects)]
    return "\n".join(lines) + "\n"


def _merged(work: Path) -> dict:
    from pipeline.stats import merged

    return merged(work)


def statistics_rows(work: Path, slug: str) -> list[dict[str, Any]]:
    """The card's statistics row of this build (nodes, edges, classes, CLIP-T mean and std
    for titles and descriptions) and, where the registry has one, the reference row."""
    manifest = read_json(workdir.publish_folder(work, slug) / workdir.MANIFEST)
    counts = manifest.get("counts", {})
    flt = manifest.get("stats", {}).get("filter", {})
    clip = manifest.get("stats", {}).get("clip", {})

    def score(key: str) -> str:
        s = flt.get(key) or clip.get(key) or {}
        if s.get("mean") is None:
            return "-"
        return f"{s['mean']:.1f} ± {s['std']:.1f}"

    rows = [
        {
            "row": "this build",
            "nodes": counts.get("nodes"),
            "edges": counts.get("edges"),
            "classes": counts.get("classes"),
            "clip_t_title": score("clip_t_title"),
            "clip_t_desc": score("clip_t_desc"),
        }
    ]
    ref = manifest.get("reference")
    if ref:
        rows.append(
            {
                "row": ref.get("source", "reference"),
                "nodes": None if ref.get("nodes_k") is None else ref["nodes_k"] * 1000,
                "edges": None if ref.get("edges_k") is None else ref["edges_k"] * 1000,
                "classes": None,
                "clip_t_title": "{:.1f} ± {:.1f}".format(*ref["clip_t_title"])
                if ref.get("clip_t_title")
                else "-",
                "clip_t_desc": "{:.1f} ± {:.1f}".format(*ref["clip_t_desc"])
                if ref.get("clip_t_desc")
                else "-",
            }
        )
    return rows
