"""CLI: ``acmmg sample`` (generate a demo dump) and ``acmmg graph`` (dumps -> 5-core graph)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli.args import add_params
    from pipeline.graph import GraphParams
    from pipeline.ingest import IngestParams
    from pipeline.resources import Resources
    from pipeline.sources.stage import FetchParams

    g = sub.add_parser(
        "graph",
        help="ingest review dumps and build the co-purchase graph (>= 3 buyers, 5-core)",
        description="Ingest Amazon review dumps (2023, 2018, ratings CSV or a user_id/item_id "
        "parquet) into canonical tables and build the co-purchase graph. A rerun with the "
        "same inputs and settings reuses the finished stages.",
    )
    add_params(g, FetchParams, exclude=("cache_dir",))
    g.add_argument("--out", required=True, type=Path, help="work directory for all outputs")
    add_params(g, IngestParams)
    add_params(g, GraphParams)
    add_params(g, Resources)
    g.add_argument("--cache-dir", type=Path, help="where downloaded dumps are kept")
    g.set_defaults(func=run_graph)

    s = sub.add_parser("sample", help="generate a seeded Amazon-2023-format sample category")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--base-url",
        default="http://127.0.0.1:8765",
        help="where the sample's images/ folder will be served",
    )
    s.add_argument("--items", type=int, default=None, help="number of items")
    s.add_argument("--users", type=int, default=None, help="number of users")
    s.add_argument("--no-images", action="store_true", help="do not render the images")
    s.set_defaults(func=run_sample)


def run_graph(args: argparse.Namespace) -> int:
    from pipeline import stages, workdir
    from pipeline.cli.args import from_args
    from pipeline.errors import UserError
    from pipeline.io import write_json
    from pipeline.resources import Resources
    from pipeline.runner import run_all
    from pipeline.stats import merged

    if not args.reviews:
        raise UserError("--reviews is required (a local path, http(s) or fsspec URL)")
    settings = {
        **vars(args),
        "reviews": tuple(args.reviews),
        "meta": tuple(args.meta or ()),
        "cache_dir": str(args.cache_dir) if args.cache_dir else None,
    }
    todo = [stages.FETCH, stages.INGEST] + ([stages.CLEAN] if args.meta else []) + [stages.GRAPH]
    res = from_args(Resources, args, progress=sys.stderr.isatty())
    run_all(args.out, settings, res, stages=todo, log_to=lambda line: None)
    full = merged(args.out)
    write_json(args.out / workdir.STATS, full)  # the whole build's counts in one file
    keys = [
        "reviews_read",
        "reviews_rejected",
        "duplicates_dropped",
        "users",
        "items",
        "pair_instances",
        "pairs_kept",
        "nodes",
        "edges",
    ]
    print(json.dumps({k: full.get(k) for k in keys}))
    print(
        f"wrote {args.out / workdir.EDGES}, {args.out / workdir.NODES}, {args.out / workdir.STATS}",
        file=sys.stderr,
    )
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pipeline.sample import SampleSpec, generate_sample

    spec = SampleSpec()
    if args.items:
        spec = replace(spec, n_items=args.items)
    if args.users:
        spec = replace(spec, n_users=args.users)
    summary = generate_sample(
        args.out, args.base_url, seed=args.seed, spec=spec, images=not args.no_images
    )
    print(json.dumps(summary, indent=2))
    return 0
