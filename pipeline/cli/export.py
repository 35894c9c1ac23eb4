"""``acmmg export sqid``: a published category folder in the layout of SQID.

    acmmg export sqid --from FOLDER --out DIR [--queries ESCI_EXAMPLES]
        [--products ESCI_PRODUCTS] [--work WORK] [--checkpoint PATH] [--device D]
        [--esci-locale us] [--esci-version small] [--esci-split test]

FOLDER: a published version folder (with manifest.json) or a publish target's ``<slug>/``
(its LATEST). The files and their definitions: pipeline/export/sqid.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.args import add_params, from_args


def _sqid(args: argparse.Namespace) -> int:
    from pipeline.export.sqid import export_sqid
    from pipeline.published import FolderModelParams
    from pipeline.sources.esci import EsciSelection

    summary = export_sqid(
        args.folder,
        args.out,
        queries=args.queries,
        products=args.products,
        selection=from_args(EsciSelection, args),
        model=from_args(FolderModelParams, args),
    )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.published import FolderModelParams
    from pipeline.sources.esci import EsciSelection

    p = sub.add_parser("export", help="export a published category folder to another layout")
    fmt = p.add_subparsers(dest="format", required=True)
    s = fmt.add_parser(
        "sqid",
        help="SQID files: product_image_urls.csv, product_features.parquet, query_features",
        description="Write SQID-shaped files for a published category: image URLs, CLIP image "
        "and title features of every product, and (with --queries, ESCI's examples file) CLIP "
        "text features of the ESCI queries judged on its products, embedded with the folder's "
        "own model.",
    )
    s.add_argument("--from", dest="folder", required=True, type=Path, help="published folder")
    s.add_argument("--out", required=True, type=Path, help="output directory")
    s.add_argument(
        "--queries",
        type=Path,
        metavar="ESCI_EXAMPLES",
        help="shopping_queries_dataset_examples.parquet: also write query_features.parquet",
    )
    s.add_argument(
        "--products",
        type=Path,
        metavar="ESCI_PRODUCTS",
        help="shopping_queries_dataset_products.parquet: report how many are in the folder",
    )
    add_params(s, FolderModelParams)
    add_params(s, EsciSelection)
    s.set_defaults(func=_sqid)
