"""The category registry (``categories.toml``): sources, settings and schedules per category.

A registry entry names its dumps and may set any build setting (a stage parameter, see
``pipeline.stages``); unset settings take the stage parameters' defaults, so a default is
written once, in its dataclass. Entries are checked when the registry loads: an unknown
setting or a value of the wrong type is an error naming the entry.
"""

from __future__ import annotations

import difflib
import functools
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

REGISTRY = Path(__file__).with_name("categories.toml")

# The settings every manifest records, whether the entry sets them or not.
RECORDED = (
    "taxonomy_level",
    "min_copurchase",
    "k",
    "min_clip_t",
    "clip_t_percentile",
    "model",
    "pretrained",
    "relations_k",
    "max_reviews",
    "max_side",
    "jpeg_quality",
)


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    file: str
    reviews: str
    meta: str
    schedule: str
    source: str = "amazon2023"
    papers: list[str] = field(default_factory=list)
    sample_items: int = 400  # source = "sample" only: size of the generated category
    sample_users: int = 4000
    # Other URLs of the same files, tried in this order when ``reviews`` / ``meta`` fail.
    reviews_mirrors: list[str] = field(default_factory=list)
    meta_mirrors: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)  # settings the entry sets
    reference: dict[str, Any] | None = None  # its row of SLIP Table 1 (see reference_row)

    def sources(self) -> dict[str, list[str]]:
        """Each source ("reviews", "meta") with its URLs in the order they are tried."""
        return {
            "reviews": [self.reviews, *self.reviews_mirrors],
            "meta": [self.meta, *self.meta_mirrors],
        }

    def settings(self) -> dict[str, Any]:
        """The build settings: the recorded ones at their defaults, then the entry's own."""
        from pipeline.stages import setting_defaults

        defaults = setting_defaults()
        return {**{k: defaults[k] for k in RECORDED}, **self.overrides}

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "overrides"}
        return {**out, "settings": self.settings()}


_ENTRY_FIELDS = {f.name for f in fields(Category)} - {"slug", "overrides", "reference"}

# The [reference] table of the registry: SLIP Table 1, one row per category it lists.
REFERENCE_SOURCE = "SLIP Table 1"
_REFERENCE_KEYS = ("nodes_k", "edges_k", "clip_t_title", "clip_t_desc")


def reference_row(slug: str, row: Any, path: Path) -> dict[str, Any]:
    """A [reference] row checked and shaped as ``acmmg categories --json`` prints it:
    nodes_k and edges_k (integers, thousands), clip_t_title and clip_t_desc ([mean, std]),
    source. A malformed row is a UserError naming it."""
    where = f"[reference] {slug} in {path.name}"
    if not isinstance(row, dict) or set(row) != set(_REFERENCE_KEYS):
        raise UserError(f"{where}: needs exactly {', '.join(_REFERENCE_KEYS)}")
    for key in ("nodes_k", "edges_k"):
        if not isinstance(row[key], int) or isinstance(row[key], bool) or row[key] <= 0:
            raise UserError(f"{where}: {key} must be a positive integer")
    for key in ("clip_t_title", "clip_t_desc"):
        v = row[key]
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v)):
            raise UserError(f"{where}: {key} must be [mean, std]")
    return {
        "nodes_k": row["nodes_k"],
        "edges_k": row["edges_k"],
        "clip_t_title": [float(x) for x in row["clip_t_title"]],
        "clip_t_desc": [float(x) for x in row["clip_t_desc"]],
        "source": REFERENCE_SOURCE,
    }


def load_registry(path: Path | None = None) -> dict[str, Category]:
    """All categories, by slug, in file order."""
    from pipeline.params import ParamError
    from pipeline.stages import check_settings

    path = Path(path or REGISTRY)
    data = tomllib.loads(path.read_text())
    defaults = data.get("defaults", {})
    references = data.get("reference", {})
    unknown = sorted(set(references) - set(data["categories"]))
    if unknown:
        raise UserError(f"[reference] in {path.name} names unknown categories: {unknown}")
    out = {}
    for slug, entry in data["categories"].items():
        merged = {**defaults, **entry}
        for key in ("reviews", "meta"):
            merged[key] = merged[key].format(file=merged["file"])
            mirrors = merged.get(f"{key}_mirrors", [])
            merged[f"{key}_mirrors"] = [m.format(file=merged["file"]) for m in mirrors]
        known = {k: v for k, v in merged.items() if k in _ENTRY_FIELDS}
        try:
            settings = check_settings(
                {k: v for k, v in merged.items() if k not in _ENTRY_FIELDS},
                source=f"setting of [categories.{slug}] in {path.name}:",
            )
        except ParamError as e:
            raise UserError(str(e)) from None
        ref = reference_row(slug, references[slug], path) if slug in references else None
        out[slug] = Category(slug=slug, overrides=settings, reference=ref, **known)
    return out


def get_category(slug: str, registry: dict[str, Category] | None = None) -> Category:
    """The registry's category ``slug``; an unknown slug is a UserError naming close matches."""
    registry = load_registry() if registry is None else registry
    if slug not in registry:
        close = difflib.get_close_matches(slug.lower(), registry, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UserError(f"unknown category {slug!r}{hint} (acmmg categories lists them)")
    return registry[slug]


@functools.cache
def _mirror_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for cat in load_registry().values():
        for urls in cat.sources().values():
            if len(urls) > 1:
                table[urls[0]] = tuple(urls[1:])
    return table


def mirrors_for(url: str) -> list[str]:
    """The registry's mirrors of a source URL (none for a URL it does not list), so that
    whoever fetches a registry source gets its mirrors without passing them along."""
    return list(_mirror_table().get(url, ()))
