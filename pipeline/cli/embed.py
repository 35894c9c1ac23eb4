"""CLI: ``acmmg embed`` (CLIP embeddings + CLIP-T, then the filter) and ``acmmg filter``.

``embed`` runs the quality-filter fixpoint at its end (skip with ``--no-filter``); ``filter``
re-runs only the fixpoint, e.g. with other thresholds, reusing the embeddings.
torch and open_clip are imported only when a command runs, so ``acmmg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quality filter")
    g.add_argument(
        "--min-clip-t",
        type=float,
        metavar="X",
        help="drop nodes whose CLIP-T (100 x cosine) is below X",
    )
    g.add_argument(
        "--clip-t-percentile",
        type=float,
        metavar="P",
        help="drop nodes below the P-th percentile of CLIP-T over the candidate "
        "nodes (computed once, then used as an absolute threshold)",
    )
    g.add_argument(
        "--clip-t-fields",
        default="both",
        choices=("both", "title", "desc", "either"),
        help="which CLIP-T must pass: title and description (both, default), one "
        "of them, or either",
    )
    g.add_argument("--k", type=int, default=5, help="k of the k-core")
    g.add_argument("--min-copurchase", type=int, default=3,
                   help="keep edges with at least this many co-purchasing users")  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "embed",
        help="CLIP embeddings and CLIP-T scores for the graph's nodes, then the quality filter",
        description="Embed every node's image, title, description and title+description with "
        "open_clip, score CLIP-T = 100 x cosine(image, text), then drop low-quality nodes and "
        "recompute the k-core until nothing changes (skip with --no-filter).",
    )
    e.add_argument("--work", required=True, type=Path, help="work directory")
    e.add_argument("--model", default="ViT-B-32", help="open_clip model name")
    e.add_argument(
        "--pretrained",
        default="openai",
        help="open_clip pretrained tag ('none' for random weights, seeded)",
    )
    e.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="local weights file (for --model) or open_clip model folder with "
        "open_clip_config.json; overrides --pretrained",
    )
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "amp-bf16", "bf16", "amp-fp16", "fp16"),
        help="auto: fp16 autocast on CUDA, bf16 weights on CPUs with native bf16, else fp32",
    )
    e.add_argument("--batch-size", type=int, default=64, help="images per batch")
    e.add_argument("--num-workers", type=int, default=2, help="image decode workers")
    e.add_argument("--seed", type=int, default=0, help="seed of random weights")
    e.add_argument("--no-filter", action="store_true", help="embed only; run 'filter' later")
    _add_filter_args(e)
    e.set_defaults(func=run_embed)

    f = sub.add_parser(
        "filter",
        help="quality filter + k-core fixpoint on an embedded work directory",
        description="Drop nodes without a clean item, an ok image or an embedding, or with a "
        "low CLIP-T, then recompute the k-core; repeat until nothing changes. Writes "
        "WORK/final/.",
    )
    f.add_argument("--work", required=True, type=Path, help="work directory")
    _add_filter_args(f)
    f.set_defaults(func=run_filter)


def _print_filter(stats: dict) -> None:
    removed = ", ".join(f"{r} {n}" for r, n in stats["removed"].items()) or "none"
    th = {k: "none" if v is None else f"{v:.2f}" for k, v in stats["thresholds"].items()}
    print(f"filter: CLIP-T thresholds title {th['clip_t_title']}, desc {th['clip_t_desc']}")
    print(f"filter: removed {removed}")
    print(f"filter: {stats['removed_by_clip_t']} nodes filtered by CLIP-T")
    print(
        f"filter: fixpoint after {len(stats['rounds'])} rounds: "
        f"{stats['nodes']} nodes, {stats['edges']} edges"
    )


def _run_filter(args: argparse.Namespace) -> dict:
    from pipeline.errors import UserError
    from pipeline.filter import filter_fixpoint

    try:
        return filter_fixpoint(
            args.work,
            k=args.k,
            min_copurchase=args.min_copurchase,
            min_clip_t=args.min_clip_t,
            clip_t_percentile=args.clip_t_percentile,
            clip_t_fields=args.clip_t_fields,
        )
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err


def run_filter(args: argparse.Namespace) -> int:
    _print_filter(_run_filter(args))
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from pipeline.clip import embed_work
    from pipeline.errors import UserError

    pretrained = None if args.pretrained.lower() in ("", "none", "random") else args.pretrained
    if args.batch_size < 1 or args.num_workers < 0:
        raise UserError("--batch-size must be >= 1 and --num-workers >= 0")
    try:
        s = embed_work(
            args.work,
            model=args.model,
            pretrained=pretrained,
            checkpoint=args.checkpoint,
            device=args.device,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            progress=sys.stderr.isatty(),
            precision=args.precision,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    except RuntimeError as err:
        if "download" in str(err).lower():
            raise UserError(
                f"{err}. Without network access, pass --checkpoint PATH to local weights"
            ) from err
        raise
    reused = " (reused, inputs and model unchanged)" if s["reused"] else ""
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
        _print_filter(_run_filter(args))
    return 0
