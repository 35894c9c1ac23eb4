"""Serve one ``build-category`` deployment per registry category, with its schedule.

    python flows/serve.py        (or: acmmg serve)

then ``prefect deployment run build-category/<slug>`` builds that category. Runs publish to
$ACMMG_PUBLISH_TO (read when the run starts) or data/published. ``ACMMG_SERVE_INTERVAL=S``
replaces every served schedule by one run every S seconds (to try the scheduler without
waiting for the month's cron). A category's runs never overlap: a second one waits for the
first (deployment concurrency limit 1), since both would build in the same work directory.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefect import serve  # noqa: E402

from flows.build_category import build_category  # noqa: E402
from pipeline.categories import get_category, load_registry  # noqa: E402


def deployments(only: list[str] | None = None, interval: float | None = None) -> list:
    """One deployment per category (``only`` these slugs), on its cron schedule or, with
    ``interval`` (default $ACMMG_SERVE_INTERVAL), every ``interval`` seconds."""
    if interval is None and os.environ.get("ACMMG_SERVE_INTERVAL"):
        interval = float(os.environ["ACMMG_SERVE_INTERVAL"])
    registry = load_registry()
    for slug in only or []:
        get_category(slug, registry)  # an unknown slug: one line, with close matches
    out = []
    for slug, cat in registry.items():
        if only and slug not in only:
            continue
        when = {"interval": timedelta(seconds=interval)} if interval else {"cron": cat.schedule}
        out.append(
            build_category.to_deployment(
                name=slug,
                parameters={"category": slug},
                description=f"Build and publish the {cat.name} category ({cat.file}).",
                tags=["acmmg", *(f"paper:{p}" for p in cat.papers)],  # no tag twice
                concurrency_limit=1,
                **when,
            )
        )
    return out


def main(only: list[str] | None = None, interval: float | None = None) -> None:
    serve(*deployments(only, interval))


if __name__ == "__main__":
    main(sys.argv[1:] or None)
