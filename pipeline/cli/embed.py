"""CLI: ``acmmg embed`` (CLIP embeddings + CLIP-T, then the filter) and ``acmmg filter``.

``embed`` runs the quality-filter fixpoint at its end (skip with ``--no-filter``); ``filter``
re-runs only the fixpoint, e.g. with other thresholds, reusing the embeddings. Both run the
declared stages (``pipeline.stages``), so a rerun with unchanged inputs and settings reuses
the finished work. torch and open_clip are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli.args import add_params
    from pipeline.clip.params import EmbedParams
    from pipeline.filter import FilterParams

    e = sub.add_parser(
        "embed",
        help="CLIP embeddings and CLIP-T scores for the graph's nodes, then the quality filter",
        description="Embed every node's image, title, description and title+description with "
        "open_clip, score CLIP-T = 100 x cosine(image, text), then drop low-quality nodes and "
        "recompute the k-core until nothing changes (skip with --no-filter).",
    )
    e.add_argument("--work", required=True, type=Path, help="work directory")
    add_params(e, EmbedParams)
    e.add_argument("--no-filter", action="store_true", help="embed only; run 'filter' later")
    add_params(e.add_argument_group("quality filter"), FilterParams)
    e.set_defaults(func=run_embed)

    f = sub.add_parser(
        "filter",
        help="quality filter + k-core fixpoint on an embedded work directory",
        description="Drop nodes without a clean item, an ok image or an embedding, or with a "
        "low CLIP-T, then recompute the k-core; repeat until nothing changes. Writes "
        "WORK/final/.",
    )
    f.add_argument("--work", required=True, type=Path, help="work directory")
    add_params(f, FilterParams)
    f.set_defaults(func=run_filter)


def _print_filter(stats: dict) -> None:
    removed = ", ".join(f"{r} {n}" for r, n in stats["removed"].items()) or "none"
    th = {k: "none" if v is None else f"{v:.2f}" for k, v in stats["thresholds"].items()}
    print(f"filter: CLIP-T thresholds title {th['clip_t_title']}, desc {th['clip_t_desc']}")
    print(f"filter: removed {removed}")
    print(f"filter: {stats['removed_by_clip_t']} nodes filtered by CLIP-T")
    print(
        f"filter: fixpoint after {stats['rounds']} rounds: "
        f"{stats['nodes']} nodes, {stats['edges']} edges"
    )


def _run(stage, args: argparse.Namespace):
    from pipeline.cli.args import from_args
    from pipeline.resources import Resources
    from pipeline.runner import run_stage

    p = from_args(stage.params, args)
    return run_stage(stage, args.work, p, Resources(progress=sys.stderr.isatty()))


def run_filter(args: argparse.Namespace) -> int:
    from pipeline.stages import FILTER

    _print_filter(_run(FILTER, args)[0])
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError
    from pipeline.stages import EMBED

    try:
        s, cached = _run(EMBED, args)
    except RuntimeError as err:
        if "download" in str(err).lower():
            raise UserError(
                f"{err}. Without network access, pass --checkpoint PATH to local weights"
            ) from err
        raise
    reused = " (reused, inputs and model unchanged)" if cached else ""
    print(f"embed: {s['embedded']} of {s['candidates']} nodes embedded{reused}")
    print(
        f"embed: skipped {s['skipped_no_item']} without an item, "
        f"{s['skipped_image_not_ok']} without an ok image, "
        f"{s['image_decode_failed']} undecodable"
    )
    for col, name in (("clip_t_title", "title"), ("clip_t_desc", "description")):
        v = s[col]
        if v["mean"] is not None:
            print(f"embed: CLIP-T {name} {v['mean']:.2f} +- {v['std']:.2f}")
    if not args.no_filter:
        run_filter(args)
    return 0
