"""One build of one registry category: its work directory, its settings, its sources.

``plan`` turns a build request (what a flow run or ``acmmg build`` asks for) into the flat
settings every stage takes its parameters from, checking every name and value before any
work starts. ``sources`` yields the category's dump URIs; a sample category is generated and
served on 127.0.0.1 for the duration. Both runners (the Prefect flow and
``pipeline.runner.run_all``) use these.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import workdir
from pipeline.categories import Category, get_category
from pipeline.errors import UserError
from pipeline.params import ParamError
from pipeline.stages import check_settings

DEFAULT_WORK_ROOT = "data/work"


@dataclass(frozen=True)
class Build:
    category: Category
    work: Path
    settings: dict[str, Any]  # registry settings with the request's overrides
    request: dict[str, Any] = field(default_factory=dict)  # the other per-run choices

    @property
    def slug(self) -> str:
        return self.category.slug


def plan(
    category: str,
    *,
    publish_to: str | None = None,
    work_root: str | None = None,
    overrides: dict[str, Any] | None = None,
    reviews: list[str] | None = None,
    meta: list[str] | None = None,
    device: str = "auto",
    checkpoint: str | None = None,
    verified_only: bool = False,
    max_items_per_user: int | None = None,
    seed: int = 0,
    allow_private: list[str] | None = None,
) -> Build:
    """The build of ``category``: every setting checked (unknown names, wrong types) here,
    before anything runs."""
    cat = get_category(category)
    try:
        checked = check_settings(dict(overrides or {}), source="setting")
    except ParamError as e:
        raise UserError(str(e)) from None
    root = Path(work_root or os.environ.get("ACMMG_WORK_ROOT") or DEFAULT_WORK_ROOT)
    request = {
        "publish_to": publish_to,
        "reviews": list(reviews or []),
        "meta": list(meta or []),
        "device": device,
        "checkpoint": checkpoint,
        "verified_only": verified_only,
        "max_items_per_user": max_items_per_user,
        "seed": seed,
        "allow_private": list(allow_private or []),
    }
    b = Build(cat, root / category, {**cat.settings(), **checked}, request)
    stage_settings(b, [], [], [])  # every stage's parameters build: bad values fail now
    return b


def stage_settings(
    b: Build, review_uris: list[str], meta_uris: list[str], private: list[str]
) -> dict[str, Any]:
    """The flat settings every stage's parameters are made from."""
    r = b.request
    recorded = {
        **b.settings,
        "category": b.slug,
        "verified_only": r["verified_only"],
        "max_items_per_user": r["max_items_per_user"],
        "seed": r["seed"],
        "sources": {"reviews": review_uris, "meta": meta_uris},
    }
    values = {
        **b.settings,
        "category": b.slug,
        "reviews": tuple(review_uris),
        "meta": tuple(meta_uris),
        "cache_dir": str(b.work / workdir.DOWNLOADS),
        "allow_private": tuple(sorted(set(private) | set(r["allow_private"]))),
        "verified_only": r["verified_only"],
        "max_items_per_user": r["max_items_per_user"],
        "seed": r["seed"],
        "device": r["device"],
        "checkpoint": r["checkpoint"],
        "publish_to": r["publish_to"],
        "build_params": recorded,
        "reference": b.category.reference,
    }
    from pipeline.stages import STAGES

    try:
        for stage in STAGES:
            stage.make_params(values)
    except ParamError as e:
        raise UserError(str(e)) from None
    return values


@contextlib.contextmanager
def sources(b: Build) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """(review URIs, metadata URIs, networks the image stage may fetch from) of the build;
    a sample category is generated in ``work/sample`` and served meanwhile."""
    r, cat = b.request, b.category
    if r["reviews"]:
        yield r["reviews"], r["meta"], []
        return
    if cat.source == "sample":
        from pipeline.sample import SampleSpec
        from pipeline.sample_server import serve_sample

        spec = SampleSpec(category=cat.file, n_items=cat.sample_items, n_users=cat.sample_users)
        with serve_sample(b.work / workdir.SAMPLE, spec) as base:
            yield (
                [cat.reviews.replace("sample://", f"{base}/")],
                [cat.meta.replace("sample://", f"{base}/")],
                ["127.0.0.1/32"],
            )
        return
    yield [cat.reviews], [cat.meta], []
