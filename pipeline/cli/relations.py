"""``acmmg relations``: cluster users and write the RCML relation texts of a work directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli.args import from_args
    from pipeline.runner import run_stage
    from pipeline.stages import RELATIONS

    stats, _ = run_stage(RELATIONS, Path(args.work), from_args(RELATIONS.params, args))
    print(
        f"relations: {stats['users_clustered']} users in {stats['k']} clusters "
        f"(requested {stats['k_requested']}), {stats['edges']} edges "
        f"({stats['edges_fallback']} by nearest centroid), silhouette {stats['silhouette']}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli.args import add_params
    from pipeline.relations import RelationsParams

    p = sub.add_parser(
        "relations",
        help="cluster users by category mix; write relation texts and per-edge relations",
        description="Cluster users on the shares of all their purchases over the category's "
        "first-level subcategories (--relation-level), describe each cluster in words (RCML "
        "relation texts) and give every final edge the distribution of its co-buyers over "
        "the relations (the majority first). Writes WORKDIR/relations/.",
    )
    p.add_argument("--work", required=True, type=Path, help="work directory of one category")
    add_params(p, RelationsParams)
    p.set_defaults(func=_run)
