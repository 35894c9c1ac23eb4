"""``acmmg eval search``: the ESCI ranking baseline on a published folder.

    acmmg eval search --from FOLDER --queries ESCI_EXAMPLES [--out REPORT.json] [--k 10]
        [--min-judged 2] [--work WORK] [--checkpoint PATH] [--device D]
        [--esci-locale us] [--esci-version small] [--esci-split test]

``add_search_args(parser)`` adds these flags to a parser, leaving out those it already has
(the ``eval`` parser's ``--out``, ``--checkpoint``, ``--device``; its ``--data`` is taken as
the folder when ``--from`` is not given), and ``run_search(args)`` runs the benchmark, prints
the table and writes the report. Definitions: pipeline/search_eval.py.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pipeline.cli.args import add_params, from_args
from pipeline.errors import UserError
from pipeline.io import write_json
from pipeline.params import fields


def _taken(parser: argparse.ArgumentParser, cls: type) -> tuple[str, ...]:
    flags = parser._option_string_actions  # argparse keeps no public list of its flags

    def flag(f: dataclasses.Field) -> str:
        return f.metadata.get("flag") or "--" + f.name.replace("_", "-")

    return tuple(f.name for f in fields(cls) if flag(f) in flags)


def add_search_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``acmmg eval search`` that ``parser`` lacks."""
    from pipeline.published import FolderModelParams
    from pipeline.search_eval import SearchParams
    from pipeline.sources.esci import EsciSelection

    have = parser._option_string_actions
    g = parser.add_argument_group("search (ESCI ranking)")
    if "--from" not in have:
        g.add_argument("--from", dest="folder", type=Path, help="published category folder")
    g.add_argument(
        "--queries",
        type=Path,
        metavar="ESCI_EXAMPLES",
        help="ESCI shopping_queries_dataset_examples.parquet",
    )
    if "--out" not in have:
        g.add_argument("--out", type=Path, help="where the report (JSON) goes")
    for cls in (SearchParams, FolderModelParams, EsciSelection):
        add_params(g, cls, exclude=_taken(parser, cls))


def run_search(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed ``add_search_args`` flags; 0 on success."""
    from pipeline.published import FolderModelParams
    from pipeline.search_eval import SearchParams, evaluate_search, format_table
    from pipeline.sources.esci import EsciSelection

    folder = getattr(args, "folder", None) or getattr(args, "data", None)
    if folder is None or getattr(args, "queries", None) is None:
        raise UserError("search needs --from FOLDER and --queries ESCI_EXAMPLES")
    model = from_args(FolderModelParams, args, device=getattr(args, "device", None) or "auto")
    report = evaluate_search(
        folder,
        args.queries,
        selection=from_args(EsciSelection, args),
        model=model,
        params=from_args(SearchParams, args),
    )
    print(format_table(report))
    if getattr(args, "out", None) is not None:
        write_json(args.out, report)
        print(f"report written to {args.out}")
    return 0
