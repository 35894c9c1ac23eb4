"""Running stages in tests: the fetch and ingest stages on local files, in one call."""

from __future__ import annotations

from pathlib import Path

from pipeline.ingest import IngestParams, ingest
from pipeline.sources.stage import FetchParams, fetch_sources


def ingest_dumps(
    reviews: list[str],
    meta: list[str] | None,
    work: Path,
    fmt: str = "auto",
    verified_only: bool = False,
    cache_dir: Path | None = None,
) -> dict:
    """The fetch stage on ``reviews`` / ``meta``, then ingest; returns ingest's stats."""
    cache = str(cache_dir) if cache_dir else None
    fetch_sources(
        work,
        FetchParams(
            reviews=tuple(map(str, reviews)), meta=tuple(map(str, meta or ())), cache_dir=cache
        ),
    )
    return ingest(work, IngestParams(format=fmt, verified_only=verified_only))
