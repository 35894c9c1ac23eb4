"""The ``acmmg`` command line. Each stage module contributes its subcommands.

A module listed in COMMANDS defines ``register(subparsers)``, which adds its subparsers and
sets ``func`` (called with the parsed args, returns an exit code) on each.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = [
    "pipeline.cli_graph",
    "pipeline.cli_flows",
    "pipeline.cli_relations",
    "pipeline.cli_images",
    "pipeline.cli_clip",
    "pipeline.cli_publish",
    "pipeline.cli_train",
]


class UserError(Exception):
    """A problem with the user's input: printed as one clear line, exit status 2."""


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


if __name__ == "__main__":
    # Import by name: run as ``python -m pipeline.cli`` this file is ``__main__``, and its
    # UserError would not be the one the subcommand modules raise.
    from pipeline.cli import main as _main

    sys.exit(_main())
