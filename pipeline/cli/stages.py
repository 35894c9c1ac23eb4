"""``acmmg stages``: the stage table, generated from the declarations (``pipeline.stages``)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stages",
        help="list the pipeline's stages: inputs, outputs, parameters, stats",
        description="Every stage of a build in order, from its declaration in pipeline/stages.py.",
    )
    p.add_argument("--markdown", action="store_true", help="as the tables of docs/architecture.md")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument(
        "--write-doc",
        metavar="FILE",
        help="put the markdown tables between the stage markers of FILE (docs/architecture.md)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.stage_table import markdown, rows, with_table

    if args.write_doc:
        doc = Path(args.write_doc)
        doc.write_text(with_table(doc.read_text()))
    elif args.json:
        print(json.dumps(rows(), indent=2, default=str))
    elif args.markdown:
        print(markdown(), end="")
    else:
        for r in rows():
            flags = ", ".join(f for f in ("network", "sharded") if r[f]) or "-"
            print(f"{r['name']:10} {r['doc']}")
            print(f"{'':10}   in:  {', '.join(r['inputs']) or '-'}")
            print(f"{'':10}   out: {', '.join(r['outputs']) or '-'}")
            print(f"{'':10}   stats: {r['stats'] or '-'}; {flags}")
            params = ", ".join(f"{p['name']}={p['default']!r}" for p in r["params"])
            print(f"{'':10}   params: {params or '-'}")
    return 0
