"""CLI: ``acmmg categories``, ``acmmg build``, ``acmmg demo`` and ``acmmg serve``.

The Prefect code lives in flows/; these commands only parse arguments and call it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipeline.errors import UserError
from pipeline.params import as_dict


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.build import Request
    from pipeline.cli.args import add_params

    c = sub.add_parser("categories", help="list the category registry")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_categories)

    for name, helptext in [
        ("build", "run the build-category flow for one category (Prefect, local engine)"),
        ("demo", "generate the demo sample, serve it on 127.0.0.1 and build it end to end"),
    ]:
        b = sub.add_parser(name, help=helptext)
        if name == "build":
            b.add_argument("category")
            add_params(b, Request, exclude=("device", "checkpoint"))
        else:
            b.add_argument("--out", required=True, help="publish target for the demo")
            add_params(b, Request, only=("work_root",))
        add_params(b, Request, only=("device", "checkpoint"))
        b.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a build setting (acmmg stages lists them), e.g. --set min_clip_t=20",
        )
        b.add_argument("--task-runner", default="thread", choices=("thread", "dask"))
        b.add_argument(
            "--dask-address",
            help="scheduler of an existing Dask cluster "
            "(tcp://host:8786); without it, a LocalCluster",
        )
        b.add_argument("--dask-workers", type=int, default=2, help="LocalCluster workers")
        b.add_argument(
            "--shards",
            type=int,
            help="parallel tasks per sharded stage: graph partitions, image and embedding "
            "shards (default 2 x --dask-workers with --task-runner dask, else 1)",
        )
        b.set_defaults(func=run_build if name == "build" else run_demo)

    s = sub.add_parser("serve", help="serve one deployment per category with its schedule")
    s.add_argument("categories", nargs="*", help="only these slugs (default: all)")
    s.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="run every SECONDS instead of the registry's cron schedules "
        "(default $ACMMG_SERVE_INTERVAL; for trying the scheduler out)",
    )
    s.set_defaults(func=run_serve)


def run_categories(args: argparse.Namespace) -> int:
    from pipeline.categories import load_registry

    reg = load_registry()
    if args.json:
        print(json.dumps({k: v.to_json() for k, v in reg.items()}, indent=2))
        return 0
    print(f"{'slug':30} {'Amazon 2023 file':28} {'schedule':14} papers")
    for slug, cat in reg.items():
        print(f"{slug:30} {cat.file:28} {cat.schedule:14} {', '.join(cat.papers) or '-'}")
    return 0


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set takes KEY=VALUE, not {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _run(args: argparse.Namespace, category: str, **fixed) -> int:
    from pipeline.build import Request, plan
    from pipeline.cli.args import from_args

    request = from_args(Request, args, overrides=_overrides(args.set), **fixed)
    # Every name and value is checked here, before a Prefect server starts or work runs.
    plan(category, request)
    if args.shards is not None and args.shards < 1:
        raise UserError("--shards must be at least 1")
    # Without PREFECT_API_URL, Prefect starts a temporary local server; give it time on a
    # small, busy machine, and send nothing anywhere.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from flows.run import run_build_category

    flow_params = {k: v for k, v in as_dict(request).items() if v not in (None, [], {})}
    result = run_build_category(
        category,
        task_runner=args.task_runner,
        dask_address=args.dask_address,
        dask_workers=args.dask_workers,
        shards=args.shards,
        **flow_params,
    )
    print(json.dumps({k: result[k] for k in ("category", "version", "target")}))
    return 0


def run_build(args: argparse.Namespace) -> int:
    return _run(args, args.category)


def run_demo(args: argparse.Namespace) -> int:
    out = str(Path(args.out).resolve()) if "://" not in args.out else args.out
    code = _run(args, "demo", publish_to=out)
    if "://" not in out:
        latest = (Path(out) / "demo" / "LATEST").read_text().strip()
        print(
            f"demo published to {Path(out) / 'demo' / 'versions' / latest}; fetch a plain "
            f"folder with: acmmg download demo --from {out} --to DIR"
        )
    return code


def run_serve(args: argparse.Namespace) -> int:
    from flows.serve import main

    main(args.categories or None, args.interval)
    return 0
