"""The fetch stage: every input dump as a complete local copy, listed in ``sources.json``.

Ingest reads only the copies this stage lists, so a dump is fetched (and hashed) once per
run. The stage always runs (remote copies are revalidated cheaply, local files re-hashed
only when their size or mtime changed); its cache key is what ingest's key is made of.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from pipeline import workdir
from pipeline.errors import UserError
from pipeline.io import read_json, write_json_if_changed
from pipeline.params import param
from pipeline.resources import Resources
from pipeline.sources.fetch import FetchError, Source, fetch

KINDS = ("reviews", "meta", "image_urls")


@dataclass(frozen=True)
class FetchParams:
    reviews: tuple[str, ...] = param(
        (),
        "review dump: local path, http(s) or fsspec URL; repeatable",
        metavar="PATH_OR_URL",
        setting=False,
    )
    meta: tuple[str, ...] = param(
        (),
        "item metadata dump; when given, items without a usable title, description or image "
        "are dropped before the graph; repeatable",
        metavar="PATH_OR_URL",
        setting=False,
    )
    image_urls: tuple[str, ...] = param(
        (),
        "image-URL list, columns product_id,image_url (SQID's product_image_urls.csv): the "
        "image of items whose metadata has none usable; repeatable",
        metavar="FILE.csv",
        setting=False,
    )
    url_aliases: tuple[str, ...] = param(
        (),
        "FROM=TO URL prefixes: where to connect for a URL (a locally served sample)",
        key=False,
        setting=False,
        cli=False,
    )
    cache_dir: str | None = param(
        None, "where downloaded dumps are kept (default $ACMMG_CACHE)", key=False, setting=False
    )


def fetch_sources(work: Path, p: FetchParams, res: Resources = Resources()) -> dict:
    """Fetch (or locate) every dump of ``p``; write ``work/sources.json``; returns it."""
    work = Path(work)
    if not p.reviews:
        raise UserError("no review dump given")
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(p.cache_dir) if p.cache_dir else None
    doc = {}
    for kind in KINDS:
        try:
            got = [
                fetch(uri, cache, progress=res.progress, aliases=p.url_aliases)
                for uri in getattr(p, kind)
            ]
        except FetchError as e:
            raise UserError(str(e)) from e
        doc[kind] = [{**s.fingerprint(), "path": str(s.path)} for s in got]
    write_json_if_changed(work / workdir.SOURCES, doc)  # a rerun leaves it untouched
    return doc


def load_sources(work: Path) -> dict[str, list[Source]]:
    """The sources the fetch stage listed, by kind."""
    doc = read_json(workdir.require(Path(work) / workdir.SOURCES, "inputs (run the fetch stage)"))
    names = {f.name for f in fields(Source)}
    return {
        kind: [
            Source(**{**{k: v for k, v in d.items() if k in names}, "path": Path(d["path"])})
            for d in doc.get(kind, [])
        ]
        for kind in KINDS
    }


def source_files(work: Path) -> list[Path]:
    """The local copies ``sources.json`` lists (ingest's inputs besides the list itself)."""
    path = Path(work) / workdir.SOURCES
    if not path.exists():
        return [path]
    return [path] + [Path(s.path) for kind in load_sources(work).values() for s in kind]
