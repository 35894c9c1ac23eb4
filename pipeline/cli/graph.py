"""CLI: ``acmmg sample`` (the demo dump, or a real-sized profile) and ``acmmg graph`` (dumps -> 5-core graph)."""

from __future__ import annotations

import argparse
import json
import os
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

    s = sub.add_parser(
        "sample",
        help="generate a seeded Amazon-2023-format sample category",
        description="Without --profile: the small demo category (--items, --users). With "
        "--profile electronics --scale S: a category shaped like Amazon 2023 Electronics, "
        "streamed to gzip (S = 1 is the real size: 18.3 M users, 1.6 M items, ~44 M reviews; "
        "images only for items that can reach the 5-core).",
    )
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--base-url",
        default="http://127.0.0.1:8765",
        help="where the sample's folder will be served (image URLs point there)",
    )
    s.add_argument("--items", type=int, default=None, help="number of items (demo sample)")
    s.add_argument("--users", type=int, default=None, help="number of users (demo sample)")
    s.add_argument("--profile", help="a real-sized category shape: electronics")
    s.add_argument("--scale", type=float, default=0.01, help="with --profile: 1 = real size")
    s.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="with --profile: processes (the output does not depend on it)",
    )
    s.add_argument("--no-images", action="store_true", help="do not render the images")
    s.add_argument(
        "--serve",
        action="store_true",
        help="then serve --out at --base-url (127.0.0.1) until interrupted",
    )
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
        "image_urls": tuple(args.image_urls or ()),
        "locale": tuple(args.locale or ()),
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

    from pipeline.errors import UserError

    server = _bind(args.base_url, args.out) if args.serve else None
    base_url = args.base_url
    if server is not None:
        # Port 0 in --base-url: the URLs name the port the server got.
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        if args.profile:
            from pipeline.sample_profile import generate_profile

            if args.items or args.users:
                raise UserError("--items and --users are for the demo sample, not --profile")
            summary = generate_profile(
                args.out,
                args.profile,
                args.scale,
                seed=args.seed,
                base_url=base_url,
                images=not args.no_images,
                workers=args.workers,
            )
        else:
            from pipeline.sample import SampleSpec, generate_sample

            spec = SampleSpec()
            if args.items:
                spec = replace(spec, n_items=args.items)
            if args.users:
                spec = replace(spec, n_users=args.users)
            summary = generate_sample(
                args.out, base_url, seed=args.seed, spec=spec, images=not args.no_images
            )
        print(json.dumps(summary, indent=2), flush=True)
        if server is not None:
            _serve(server, args.out, base_url)
    finally:
        if server is not None:
            server.server_close()
    return 0


def _bind(base_url: str, root: Path):
    """An HTTP server of ``root`` for ``base_url`` (on 127.0.0.1), bound but not serving yet,
    so that a busy port fails before the generation and port 0 can name the real port."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    from pipeline.errors import UserError

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # a line per image request drowns the log
            pass

    url = urlsplit(base_url)
    if (
        url.scheme != "http"
        or url.hostname not in ("127.0.0.1", "localhost")
        or url.path.strip("/")
    ):
        raise UserError(f"--serve needs --base-url http://127.0.0.1:PORT, not {base_url!r}")
    handler = functools.partial(Quiet, directory=str(Path(root).resolve()))
    try:
        return ThreadingHTTPServer(("127.0.0.1", 80 if url.port is None else url.port), handler)
    except OSError as e:
        raise UserError(f"--serve: cannot listen on 127.0.0.1:{url.port}: {e.strerror}") from e


def _serve(server, root: Path, base_url: str) -> None:
    import signal

    def stop(*_) -> None:
        raise KeyboardInterrupt

    # SIGTERM (kill) stops it as Ctrl-C does; so does SIGINT, also where a shell started it
    # in the background with SIGINT ignored.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"serving {root} at {base_url}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
