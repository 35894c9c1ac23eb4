"""The publish stage: the assembled folder to its target (local directory, fsspec URL or the
Hugging Face Hub), atomically; an unchanged version uploads nothing."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import workdir
from pipeline.params import param
from pipeline.resources import Resources

log = logging.getLogger(__name__)

DEFAULT_PUBLISH_TO = "data/published"


@dataclass(frozen=True)
class PublishParams:
    category: str = param(help="the category's slug", cli=False, setting=False)
    publish_to: str | None = param(
        None,
        "directory or fsspec URL (default $ACMMG_PUBLISH_TO, else data/published)",
        setting=False,
    )


def publish_target(publish_to: str | None) -> str:
    """``publish_to``, else $ACMMG_PUBLISH_TO (read when the run starts), else data/published."""
    return publish_to or os.environ.get("ACMMG_PUBLISH_TO") or DEFAULT_PUBLISH_TO


def publish(work: Path, p: PublishParams, res: Resources = Resources()) -> dict:
    """Publish ``work/publish/<slug>/``; returns the version and where it went."""
    from pipeline.publish.targets import already_published, publish_folder

    target = publish_target(p.publish_to)
    folder = workdir.publish_folder(work, p.category)
    unchanged = already_published(folder, p.category, target)
    version = publish_folder(folder, p.category, target)
    if unchanged:
        log.info("%s version %s: unchanged, nothing uploaded to %s", p.category, version, target)
    else:
        log.info("published %s version %s to %s", p.category, version, target)
    return {"category": p.category, "version": version, "target": target, "uploaded": not unchanged}
