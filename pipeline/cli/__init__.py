"""The ``acmmg`` command line. Each stage module contributes its subcommands.

A module listed in COMMANDS defines ``register(subparsers)``, which adds its subparsers and
sets ``func`` (called with the parsed args, returns an exit code) on each.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import traceback

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
    "pipeline.cli.export",
    "pipeline.cli.stages",
    "pipeline.cli.sources",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acmmg", description="Build ACMMG-style multimodal co-purchase graph datasets."
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging; tracebacks on errors"
    )
    parser.add_argument("--version", action="version", version=f"acmmg {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("acmmg-pipeline")
    except PackageNotFoundError:  # run from a checkout that is not installed
        from pipeline import __version__

        return __version__


def _error_line(exc: BaseException, argv: list[str]) -> tuple[str, int]:
    """What to print for an error reaching the top, and the exit status: 2 for problems the
    user can fix (their input, the network, the storage), 1 for a bug."""
    from pipeline.http import describe_error

    if isinstance(exc, UserError):
        return str(exc), 2
    line = describe_error(exc)
    if line is None:
        return f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", 1
    if "://" not in line:  # name the URL the command was given, where the error does not
        urls = [a for a in argv if re.match(r"^[a-z][a-z0-9+.-]*://", a)]
        if urls:
            line = f"{', '.join(urls)}: {line}"
    return line, 2


def _quiet_broken_pipe() -> int:
    # The reader went away (`acmmg categories | head`): say nothing, and keep Python from
    # complaining when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, as a shell reports a command a broken pipe ended


class _RunFormatter(logging.Formatter):
    """Log lines with the Prefect task (or flow) run they come from, when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        run = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        record.run = f" [{run}]" if run else ""
        return super().format(record)


def _logging(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_RunFormatter("%(asctime)s %(levelname)s%(run)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # One line per HTTP call to Prefect's API would bury the pipeline's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    try:
        if sys.stderr.isatty():  # log lines go through tqdm, so none overwrites a bar
            from tqdm.contrib.logging import logging_redirect_tqdm

            with logging_redirect_tqdm():
                code = int(args.func(args) or 0)
        else:
            code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print(f"acmmg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        line, code = _error_line(e, argv)
        if args.verbose:
            traceback.print_exc()
        print(f"acmmg {args.command}: error: {line}", file=sys.stderr)
        return code
