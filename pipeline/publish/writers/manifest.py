"""``manifest.json``: every other file with size and sha256, the content version, counts,
parameters, sources and stats. Written last; its build_time is the only value that differs
between two builds of the same inputs (pin it with SOURCE_DATE_EPOCH)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pipeline
from acmmg.layout import derive_version
from pipeline import workdir
from pipeline.io import sha256_file

FILE = workdir.MANIFEST
FORMAT = "acmmg-category/1"


def build_time() -> str:
    """ISO-8601 UTC build time: SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
        if epoch
        else dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# The version is the content hash, computed where downloads recompute it (acmmg.layout).
content_version = derive_version


def file_inventory(folder: Path, exclude: tuple[str, ...] = (FILE,)) -> dict[str, dict]:
    """{relative posix path: {"size", "sha256"}} for every file under ``folder``."""
    out: dict[str, dict] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = p.relative_to(folder).as_posix()
            if rel not in exclude:
                out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return dict(sorted(out.items()))


def write_manifest(dest: Path, category: str, **fields: Any) -> dict:
    """The manifest of ``dest``: its files as they are now plus ``fields`` (counts, params,
    sources, stats, ...; JSON-able), keys sorted. Returns it."""
    files = file_inventory(dest)
    manifest = {
        "format": FORMAT,
        "category": category,
        "version": content_version(files),
        "pipeline_version": pipeline.__version__,
        "build_time": build_time(),
        **fields,
        "files": files,
    }
    (dest / FILE).write_text(
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    return manifest
