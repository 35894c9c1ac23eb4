"""``acmmg train slip|rcml`` and ``acmmg eval``: the training module on a published folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Kept here (not imported) so that ``acmmg --help`` does not load torch.
TEXT_FIELDS = ("title", "description", "combined")


def _config(args: argparse.Namespace):
    from pipeline.training.train import TrainConfig

    common = dict(
        method=args.method,
        data=str(args.data),
        out=str(args.out),
        frozen=args.frozen,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head_lr=args.head_lr,
        layer_decay=args.layer_decay,
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        patience=args.patience,
        min_delta=args.min_delta,
        seed=args.seed,
        max_steps=args.max_steps,
        text_field=args.text_field,
        model=args.model,
        pretrained=args.pretrained,
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        grad_checkpointing=args.grad_checkpointing,
        device=args.device,
        num_workers=args.num_workers,
        eval_batch_size=args.eval_batch_size,
    )
    if args.method == "slip":
        common.update(
            hops=args.hops,
            lambda_graph=args.lambda_graph,
            lambda_aux=args.lambda_aux,
            gat_hidden=args.gat_hidden,
            gat_heads=args.gat_heads,
            dropout=args.dropout,
        )
    else:
        common.update(
            beta=args.beta,
            tau=args.tau,
            lambda_intra=args.lambda_intra,
            negatives=args.negatives,
            max_eval_queries=args.max_eval_queries,
        )
    return TrainConfig(**common)


def _train(args: argparse.Namespace) -> int:
    from pipeline.training.train import train

    metrics = train(_config(args), progress=not args.no_progress)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"metrics written to {Path(args.out) / 'metrics.json'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pipeline.training.train import evaluate_run

    run_dir = args.run
    # ``acmmg eval slip --data DIR --out RUN_DIR`` on a trained run evaluates that run.
    if (
        run_dir is None
        and args.out is not None
        and (Path(args.out) / "checkpoints" / "best.pt").exists()
    ):
        run_dir = args.out
    overrides = {
        "frozen": True if args.frozen else None,
        "model": args.model,
        "pretrained": args.pretrained,
        "device": args.device,
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "text_field": args.text_field,
    }
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


def _add_model_args(p: argparse.ArgumentParser, defaults: bool) -> None:
    d = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument(
        "--model",
        default=d("acmmg-tiny"),
        help="open_clip model name (default acmmg-tiny: random weights, tests/demo)",
    )
    p.add_argument("--pretrained", default=None, help="open_clip pretrained tag, e.g. openai")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="open_clip weights file or model folder (instead of --pretrained)",
    )
    p.add_argument("--device", default=d("auto"), help="auto (CUDA when present), cpu, cuda[:i]")
    p.add_argument(
        "--text-field",
        choices=TEXT_FIELDS,
        default=d("title"),
        help="text of each node (default title, as in SLIP)",
    )


def _add_train_parser(sub: argparse._SubParsersAction, method: str, help_: str) -> None:
    p = sub.add_parser(method, help=help_, description=help_)
    p.set_defaults(func=_train, method=method)
    p.add_argument("--data", required=True, type=Path, help="published category folder")
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, metrics)")
    p.add_argument(
        "--frozen",
        action="store_true",
        help="SLIP: train only adapters + graph heads on the precomputed embeddings "
        "(CPU-friendly); RCML: freeze the CLIP encoders, train the attention module",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="maximum epochs (default: SLIP 50, RCML 3)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="nodes per subgraph batch (default: SLIP 1024, RCML 512)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="base learning rate of the CLIP encoders (default: SLIP 1e-5, RCML 5e-5)",
    )
    p.add_argument(
        "--head-lr",
        type=float,
        default=None,
        help="learning rate of the graph / attention heads (default: SLIP 4e-3, RCML 1e-3)",
    )
    p.add_argument(
        "--layer-decay",
        type=float,
        default=None,
        help="layer-wise learning-rate decay (default: SLIP 0.8, RCML 1.0)",
    )
    p.add_argument(
        "--schedule",
        choices=("linear", "cosine"),
        default=None,
        help="decay after warmup (default: SLIP linear, RCML cosine)",
    )
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=500,
        help="linear warmup steps (at most 10%% of the run)",
    )
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience (epochs)")
    p.add_argument("--min-delta", type=float, default=0.001, help="early-stopping min delta")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument(
        "--grad-checkpointing",
        action="store_true",
        help="recompute encoder activations in backward to save memory",
    )
    p.add_argument("--num-workers", type=int, default=0, help="image decoding workers")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_model_args(p, defaults=True)
    if method == "slip":
        p.add_argument("--hops", type=int, default=1, help="hop threshold h of the positive mask")
        p.add_argument(
            "--lambda-graph",
            type=float,
            default=0.05,
            help="weight of the structural loss (0: CLIP fine-tune baseline)",
        )
        p.add_argument(
            "--lambda-aux",
            type=float,
            default=0.1,
            help="weight of the auxiliary classification loss",
        )
        p.add_argument("--gat-hidden", type=int, default=512)
        p.add_argument("--gat-heads", type=int, default=4)
        p.add_argument("--dropout", type=float, default=0.1)
    else:
        p.add_argument(
            "--beta",
            type=float,
            default=0.6,
            help="balance of relation attention and summary token (Eq. 5)",
        )
        p.add_argument("--tau", type=float, default=0.1, help="contrastive temperature")
        p.add_argument(
            "--lambda-intra",
            type=float,
            default=0.5,
            help="weight of the intra-modal (text-text, image-image) terms",
        )
        p.add_argument(
            "--negatives",
            type=int,
            default=20,
            help="random negatives per relation-guided retrieval query",
        )
        p.add_argument("--max-eval-queries", type=int, default=2000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train SLIP or RCML on a published category folder",
        description="Train SLIP (structure-aware CLIP) or RCML (relation-conditioned CLIP) on a "
        "published category folder; writes checkpoints and RUN_DIR/metrics.json.",
    )
    tsub = p.add_subparsers(dest="method", required=True)
    _add_train_parser(tsub, "slip", "SLIP: CLIP + GAT structural contrastive loss + aux classifier")
    _add_train_parser(tsub, "rcml", "RCML: relation-conditioned attention pooling and loss")

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
        choices=("slip", "rcml"),
        default=None,
        help="method (taken from the run when --run is given)",
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
    _add_model_args(e, defaults=False)
    e.set_defaults(func=_eval)
