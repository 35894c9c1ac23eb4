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
from pipeline.params import ParamError, param
from pipeline.stages import check_settings

DEFAULT_WORK_ROOT = "data/work"


@dataclass(frozen=True)
class Request:
    """What a build run asks for besides the category: the flow's parameters and the flags
    of ``acmmg build``. A value left at None takes the stage parameter's default."""

    publish_to: str | None = param(
        None,
        "a directory, fsspec URL or hf://datasets/OWNER/NAME "
        "(default $ACMMG_PUBLISH_TO, else data/published)",
    )
    work_root: str | None = param(
        None, "where work directories live (default $ACMMG_WORK_ROOT, else data/work)"
    )
    overrides: dict = param(
        {}, "registry settings to replace, e.g. {min_clip_t: 20} (acmmg stages lists them)",
        cli=False,
    )  # fmt: skip
    reviews: tuple[str, ...] = param((), "review dump URLs replacing the registry's", metavar="URL")
    meta: tuple[str, ...] = param((), "metadata dump URLs replacing the registry's", metavar="URL")
    image_urls: tuple[str, ...] = param(
        (),
        "image-URL lists (product_id,image_url; SQID's product_image_urls.csv): images of "
        "items whose metadata has none usable",
        metavar="FILE.csv",
    )
    prefer_image_urls: bool | None = param(
        None, "take the --image-urls URL even where the metadata has a usable one"
    )
    format: str | None = param(None, "input format (auto, 2023, 2018, csv, parquet, m2)")
    locale: tuple[str, ...] = param(
        (), "Amazon-M2 markets to keep (default: the registry's, else all)", metavar="LOCALE"
    )
    device: str | None = param(None, "device of the CLIP stage: auto, cpu, cuda or cuda:N")
    checkpoint: str | None = param(None, "a local open_clip checkpoint (file or model folder)")
    verified_only: bool | None = param(None, "use verified purchases only", cli=False)
    max_items_per_user: int | None = param(
        None, "drop users with more distinct items than this", metavar="N"
    )
    seed: int | None = param(None, "seed of the relations' clustering and of the node splits")
    allow_private: tuple[str, ...] = param(
        (), "networks the image stage may fetch from although not public", metavar="CIDR"
    )

    # The request values that are stage settings (the rest say where things go).
    SETTINGS = (
        "device",
        "checkpoint",
        "verified_only",
        "max_items_per_user",
        "seed",
        "prefer_image_urls",
        "format",
        "locale",
    )


@dataclass(frozen=True)
class Build:
    category: Category
    work: Path
    settings: dict[str, Any]  # registry settings, the request's overrides and stage values
    request: Request = field(default_factory=Request)

    @property
    def slug(self) -> str:
        return self.category.slug


def plan(category: str, request: Request | None = None) -> Build:
    """The build of ``category``: every setting checked (unknown names, wrong types) here,
    before anything runs."""
    r = request or Request()
    cat = get_category(category)
    given = {k: getattr(r, k) for k in Request.SETTINGS if getattr(r, k) not in (None, ())}
    try:
        checked = check_settings({**dict(r.overrides), **given}, source="setting")
    except ParamError as e:
        raise UserError(str(e)) from None
    root = Path(r.work_root or os.environ.get("ACMMG_WORK_ROOT") or DEFAULT_WORK_ROOT)
    b = Build(cat, root / category, {**cat.settings(), **checked}, r)
    stage_settings(b)  # every stage's parameters build: bad values fail now
    return b


@dataclass(frozen=True)
class Sources:
    """A build's dumps: their URIs (what is recorded), the networks the image stage may
    fetch from although not public, and where to connect for a URL (``pipeline.http.alias``)."""

    reviews: list[str]
    meta: list[str]
    private: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)


def stage_settings(b: Build, src: Sources | None = None) -> dict[str, Any]:
    """The flat settings every stage's parameters are made from."""
    src = src or Sources([], [])
    review_uris, meta_uris = src.reviews, src.meta
    from pipeline.stages import STAGES, setting_defaults

    defaults = setting_defaults()
    effective = {k: b.settings.get(k, defaults.get(k)) for k in Request.SETTINGS}
    recorded = {
        **b.settings,
        "category": b.slug,
        **{k: effective[k] for k in ("verified_only", "max_items_per_user", "seed")},
        "sources": {"reviews": review_uris, "meta": meta_uris}
        | ({"image_urls": src.image_urls} if src.image_urls else {}),
    }
    recorded.pop("device", None)  # where it ran is not part of what it built
    recorded.pop("checkpoint", None)
    values = {
        **b.settings,
        "category": b.slug,
        "reviews": tuple(review_uris),
        "meta": tuple(meta_uris),
        "image_urls": tuple(src.image_urls),
        "cache_dir": str(b.work / workdir.DOWNLOADS),
        "allow_private": tuple(sorted(set(src.private) | set(b.request.allow_private))),
        "url_aliases": tuple(src.aliases),
        "publish_to": b.request.publish_to,
        "build_params": recorded,
        "reference": b.category.reference,
    }
    try:
        for stage in STAGES:
            stage.make_params(values)
    except ParamError as e:
        raise UserError(str(e)) from None
    return values


@contextlib.contextmanager
def sources(b: Build) -> Iterator[Sources]:
    """The build's dump URIs and how to reach them; a sample category is generated in
    ``work/sample`` and served meanwhile."""
    r, cat = b.request, b.category
    if r.reviews:
        yield Sources(list(r.reviews), list(r.meta), image_urls=list(r.image_urls))
        return
    if cat.source == "sample":
        from pipeline.sample import SampleSpec
        from pipeline.sample_server import serve_sample

        spec = SampleSpec(category=cat.file, n_items=cat.sample_items, n_users=cat.sample_users)
        with serve_sample(b.work / workdir.SAMPLE, spec) as (base, served):
            yield Sources(
                [cat.reviews.replace("sample://", f"{base}/")],
                [cat.meta.replace("sample://", f"{base}/")],
                private=["127.0.0.1/32"],
                aliases=[f"{base}={served}"] if served != base else [],
                image_urls=list(r.image_urls),
            )
        return
    yield Sources([cat.reviews], [cat.meta], image_urls=list(r.image_urls))
