"""The category registry (``categories.toml``): sources, settings and schedules per category."""

from __future__ import annotations

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
        merged["reviews"] = merged["reviews"].format(file=merged["file"])
        merged["meta"] = merged["meta"].format(file=merged["file"])
        out[slug] = Category(slug=slug, **merged)
    return out


def get_category(slug: str) -> Category:
    registry = load_registry()
    if slug not in registry:
        from pipeline.errors import UserError

        raise UserError(f"unknown category {slug!r}; known: {', '.join(registry)}")
    return registry[slug]
