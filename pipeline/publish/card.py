"""The dataset card (README.md, Hugging Face format): ``templates/card.md.j2`` filled with
``card_data.card_context``.

Everything is a pure function of ``CardData``, so the README is byte-identical across builds;
the build time lives only in manifest.json. The template is plain Markdown with Jinja2 tags
(trim_blocks / lstrip_blocks: a line holding only a tag leaves nothing behind); undefined
names are errors, so a renamed variable cannot silently print nothing.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jinja2

from pipeline.publish.card_data import CardData, card_context

TEMPLATE = "card.md.j2"
TEMPLATES = Path(__file__).with_name("templates")


def templates_sha256() -> str:
    """Hash of every template file: part of the assemble stage's cache key, since the stage
    stamps hash Python sources only."""
    h = hashlib.sha256()
    for path in sorted(TEMPLATES.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(TEMPLATES).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_card(data: CardData) -> str:
    """The README text of the card."""
    return _environment().get_template(TEMPLATE).render(**card_context(data))
