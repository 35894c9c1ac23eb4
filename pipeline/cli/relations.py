"""``acmmg relations``: cluster users and write the RCML relation texts of a work directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from pipeline.relations import build_relations

    stats = build_relations(
        Path(args.work),
        k=args.k,
        seed=args.seed,
        minibatch_threshold=args.minibatch_threshold,
        sample_silhouette=args.sample_silhouette,
    )
    print(
        f"relations: {stats['users_clustered']} users in {stats['k']} clusters "
        f"(requested {stats['k_requested']}), {stats['edges']} edges "
        f"({stats['edges_fallback']} by nearest centroid), silhouette {stats['silhouette']}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relations",
        help="cluster users by category mix; write relation texts and per-edge relations",
        description="Cluster users on their purchase shares over the category's classes, "
        "describe each cluster in words (RCML relation texts) and give every final edge the "
        "relation of most of its co-buyers. Writes WORKDIR/relations/.",
    )
    p.add_argument("--work", required=True, type=Path, help="work directory of one category")
    p.add_argument("--k", type=int, default=10, help="number of user clusters (default 10)")
    p.add_argument("--seed", type=int, default=0, help="clustering and sampling seed")
    p.add_argument(
        "--minibatch-threshold",
        type=int,
        default=200_000,
        help="use MiniBatchKMeans above this many distinct user vectors",
    )
    p.add_argument(
        "--sample-silhouette",
        type=int,
        default=10_000,
        help="users sampled for the silhouette score",
    )
    p.set_defaults(func=_run)
