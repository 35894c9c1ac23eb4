"""The ``acmmg`` command line. Each stage module contributes its subcommands.

A module listed in COMMANDS defines ``register(subparsers)``, which adds its subparsers and
sets ``func`` (called with the parsed args, returns an exit code) on each.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pipeline.errors import UserError

# One module per command group, named after its commands.
COMMANDS = [
    "pipeline.cli.graph",
    "pipeline.cli.build",
    "pipeline.cli.relations",
    "pipeline.cli.images",
    "pipeline.cli.embed",
    "pipeline.cli.publish",
    "pipeline.cli.train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acmmg", description="Build ACMMG-style multimodal co-purchase graph datasets."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP call to Prefect's API would bury the pipeline's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"acmmg {args.command}: error: {e}", file=sys.stderr)
        return 2


