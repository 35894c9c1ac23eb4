"""Serve one ``build-category`` deployment per registry category, with its schedule.

    python flows/serve.py        (or: acmmg serve)

then ``prefect deployment run build-category/<slug>`` builds that category. Runs publish to
$ACMMG_PUBLISH_TO (read when the run starts) or data/published.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefect import serve  # noqa: E402

from flows.build_category import build_category  # noqa: E402
from pipeline.categories import load_registry  # noqa: E402


def deployments(only: list[str] | None = None) -> list:
    out = []
    for slug, cat in load_registry().items():
        if only and slug not in only:
            continue
        out.append(
            build_category.to_deployment(
                name=slug,
                parameters={"category": slug},
                cron=cat.schedule,
                description=f"Build and publish the {cat.name} category ({cat.file}).",
                tags=["acmmg", *cat.papers],
            )
        )
    return out


def main(only: list[str] | None = None) -> None:
    serve(*deployments(only))


if __name__ == "__main__":
    main(sys.argv[1:] or None)
