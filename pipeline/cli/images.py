"""``acmmg images``: fetch, verify and normalise the images of the candidate nodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.images.config import RESAMPLE_FILTERS, ImageConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    d = ImageConfig()
    p = subparsers.add_parser(
        "images",
        help="fetch and normalise the image of every candidate node",
        description=(
            "Fetch the image of every candidate node (after the first k-core), verify it, "
            "normalise it to an RGB JPEG in WORK/image_store and write WORK/images.parquet. "
            "Rerunning resumes: finished items are skipped, transient failures retried."
        ),
    )
    p.add_argument("--work", type=Path, required=True, help="work directory")
    p.add_argument(
        "--nodes", type=Path, help="candidate nodes parquet (default WORK/nodes.parquet)"
    )
    p.add_argument(
        "--meta",
        nargs="+",
        help="item metadata files, ingested when WORK has no items table yet",
    )
    p.add_argument("--max-side", type=int, default=d.max_side, help="longer side of stored JPEGs")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    p.add_argument(
        "--resample",
        choices=RESAMPLE_FILTERS,
        default=d.resample,
        help="downscaling filter (box = area averaging, as img2dataset's default)",
    )
    p.add_argument(
        "--min-side", type=int, default=d.min_width, help="minimum original width/height"
    )
    p.add_argument("--max-bytes", type=int, default=d.max_bytes, help="largest response body")
    p.add_argument("--timeout", type=float, default=d.read_timeout, help="read timeout (s)")
    p.add_argument(
        "--total-timeout",
        type=float,
        default=d.total_timeout,
        help="time limit of one request: connect, headers and body, redirects included (s)",
    )
    p.add_argument(
        "--max-aspect",
        type=float,
        default=d.max_aspect,
        help="longer side over shorter side at most this (else extreme_aspect)",
    )
    p.add_argument("--retries", type=int, default=d.retries)
    p.add_argument("--threads", type=int, default=d.threads, help="download threads per process")
    p.add_argument("--processes", type=int, default=d.processes, help="0 = one per CPU")
    p.add_argument(
        "--placeholder-threshold",
        type=int,
        default=d.placeholder_threshold,
        help="an image shared by more items than this is a placeholder",
    )
    p.add_argument("--placeholder-hash", choices=("sha256", "dhash"), default=d.placeholder_hash)
    p.add_argument(
        "--allow-private",
        nargs="*",
        default=[],
        metavar="CIDR",
        help="non-public networks that may be fetched (e.g. 127.0.0.1/32 for a local mirror)",
    )
    p.add_argument(
        "--no-retry-transient",
        action="store_true",
        help="on a rerun, keep earlier timeouts/connection errors/5xx instead of retrying them",
    )
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError
    from pipeline.images.stage import fetch_images

    try:
        cfg = ImageConfig(
            max_side=args.max_side,
            jpeg_quality=args.jpeg_quality,
            resample=args.resample,
            min_width=args.min_side,
            min_height=args.min_side,
            max_bytes=args.max_bytes,
            read_timeout=args.timeout,
            total_timeout=args.total_timeout,
            max_aspect=args.max_aspect,
            retries=args.retries,
            threads=args.threads,
            processes=args.processes,
            placeholder_threshold=args.placeholder_threshold,
            placeholder_hash=args.placeholder_hash,
            allow_private=tuple(args.allow_private),
            retry_transient=not args.no_retry_transient,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    progress = {"on": True, "off": False}.get(args.progress, sys.stderr.isatty())
    s = fetch_images(args.work, nodes=args.nodes, config=cfg, progress=progress, meta=args.meta)
    r = s["this_run"]
    print(
        f"images: {s['candidates']} candidates; this run fetched {r['attempted']} URLs "
        f"({r['ok']} ok, {r['failed']} failed, {r['skipped']} skipped as done) "
        f"in {r['elapsed_s']:.1f}s"
    )
    print(
        f"  ok {s['ok']}, placeholders {s['placeholder']} "
        f"({s['placeholder_images']} shared images), failed {s['failed_total']}"
    )
    for reason, n in s["failed"].items():
        print(f"    {reason:<20} {n}")
    print(f"  -> {Path(args.work) / 'images.parquet'}")
    return 0
