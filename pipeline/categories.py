"""The category registry (``categories.toml``): sources, settings and schedules per category."""

from __future__ import annotations

import difflib
import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTRY = Path(__file__).with_name("categories.toml")


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    file: str
    reviews: str
    meta: str
    schedule: str
    source: str = "amazon2023"
    taxonomy_level: int | str = "auto"
    min_copurchase: int = 3
    k: int = 5
    min_clip_t: float | None = None
    clip_t_percentile: float | None = None
    model: str = "ViT-B-32"
    pretrained: str = "openai"
    relations_k: int = 10
    max_reviews: int = 25
    papers: list[str] = field(default_factory=list)
    sample_items: int = 400  # source = "sample" only: size of the generated category
    sample_users: int = 4000
    # Other URLs of the same files, tried in this order when ``reviews`` / ``meta`` fail.
    reviews_mirrors: list[str] = field(default_factory=list)
    meta_mirrors: list[str] = field(default_factory=list)

    def sources(self) -> dict[str, list[str]]:
        """Each source ("reviews", "meta") with its URLs in the order they are tried."""
        return {
            "reviews": [self.reviews, *self.reviews_mirrors],
            "meta": [self.meta, *self.meta_mirrors],
        }

    def settings(self) -> dict[str, Any]:
        """The build parameters (what a flow run may override)."""
        keys = [
            "taxonomy_level",
            "min_copurchase",
            "k",
            "min_clip_t",
            "clip_t_percentile",
            "model",
            "pretrained",
            "relations_k",
            "max_reviews",
        ]
        return {key: getattr(self, key) for key in keys}


def load_registry(path: Path | None = None) -> dict[str, Category]:
    """All categories, by slug, in file order."""
    data = tomllib.loads(Path(path or REGISTRY).read_text())
    defaults = data.get("defaults", {})
    out = {}
    for slug, entry in data["categories"].items():
        merged = {**defaults, **entry}
        for key in ("reviews", "meta"):
            merged[key] = merged[key].format(file=merged["file"])
            mirrors = merged.get(f"{key}_mirrors", [])
            merged[f"{key}_mirrors"] = [m.format(file=merged["file"]) for m in mirrors]
        out[slug] = Category(slug=slug, **merged)
    return out


def get_category(slug: str, registry: dict[str, Category] | None = None) -> Category:
    """The registry's category ``slug``; an unknown slug is a UserError naming close matches."""
    registry = load_registry() if registry is None else registry
    if slug not in registry:
        from pipeline.errors import UserError

        close = difflib.get_close_matches(slug.lower(), registry, n=3, cutoff=0.6)
        if close:
            hint = " or ".join(repr(c) for c in close)
            raise UserError(
                f"unknown category {slug!r}; did you mean {hint}? (`acmmg categories` lists all)"
            )
        raise UserError(f"unknown category {slug!r}; known: {', '.join(registry)}")
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
