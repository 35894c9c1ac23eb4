"""``acmmg train slip|rcml`` and ``acmmg eval``: the training module on a published folder.

The flags come from ``pipeline.training.config.TrainConfig`` (one field, one flag); torch is
imported only when a command runs, so ``acmmg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.args import add_params, from_args
from pipeline.training.config import METHODS, TrainConfig, method_fields

# Settings ``acmmg eval`` may override on a run's config (None: keep the run's).
EVAL_OVERRIDES = ("model", "pretrained", "checkpoint", "device", "text_field")
METHOD_HELP = {
    "slip": "SLIP: CLIP + GAT structural contrastive loss + aux classifier",
    "rcml": "RCML: relation-conditioned attention pooling and loss",
}


def _train(args: argparse.Namespace) -> int:
    from pipeline.training.loop import train

    metrics = train(from_args(TrainConfig, args), progress=not args.no_progress)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"metrics written to {Path(args.out) / 'metrics.json'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.method == "search":
        from pipeline.cli.search import run_search

        return run_search(args)
    from pipeline.training.evaluate import evaluate_run

    run_dir = args.run
    # ``acmmg eval slip --data DIR --out RUN_DIR`` on a trained run evaluates that run.
    if run_dir is None and args.out is not None and (Path(args.out) / "config.json").exists():
        run_dir = args.out
    overrides = {name: getattr(args, name) for name in EVAL_OVERRIDES}
    overrides["frozen"] = True if args.frozen else None
    metrics = evaluate_run(
        run_dir,
        data=args.data,
        method=args.method,
        out=args.out,
        split=args.split,
        overrides=overrides,
    )
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def _add_train_parser(sub: argparse._SubParsersAction, method: str) -> None:
    p = sub.add_parser(method, help=METHOD_HELP[method], description=METHOD_HELP[method])
    p.set_defaults(func=_train, method=method)
    add_params(p, TrainConfig, only=method_fields(method))
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train SLIP or RCML on a published category folder",
        description="Train SLIP (structure-aware CLIP) or RCML (relation-conditioned CLIP) on a "
        "published category folder; writes checkpoints and RUN_DIR/metrics.json.",
    )
    tsub = p.add_subparsers(dest="method", required=True)
    for method in METHODS:
        _add_train_parser(tsub, method)

    e = sub.add_parser(
        "eval",
        help="evaluate a training run (or the untrained model) on a split",
        description="Evaluate the best checkpoint of --run RUN_DIR (or, without a run, the "
        "untrained model: with --frozen the published CLIP embeddings) and write "
        "OUT/metrics.json (OUT defaults to the run directory).",
    )
    e.add_argument(
        "method",
        nargs="?",
        choices=(*METHODS, "search"),
        default=None,
        help="method (taken from the run when --run is given); search: the ESCI ranking "
        "baseline on a folder (--from FOLDER --queries ESCI_EXAMPLES)",
    )
    e.add_argument("--run", type=Path, default=None, help="training run directory")
    e.add_argument(
        "--data", type=Path, default=None, help="published category folder (default: the run's)"
    )
    e.add_argument("--out", type=Path, default=None, help="where metrics.json goes")
    e.add_argument("--split", choices=("train", "val", "test"), default="test")
    e.add_argument(
        "--frozen",
        action="store_true",
        help="without --run: evaluate the published embeddings (SLIP)",
    )
    add_params(e, TrainConfig, only=EVAL_OVERRIDES, defaults=dict.fromkeys(EVAL_OVERRIDES))
    from pipeline.cli.search import add_search_args

    add_search_args(e)
    e.set_defaults(func=_eval)
