"""``README.md`` (the dataset card) and its plots."""

from __future__ import annotations

from pathlib import Path

from pipeline.publish.card import render_card
from pipeline.publish.card_data import CardData
from pipeline.publish.plots import write_plots

FILE = "README.md"


def write_card(dest: Path, data: CardData) -> list[str]:
    """README.md and the plots into ``dest``; returns the file names written."""
    plots = write_plots(dest, data)
    (dest / FILE).write_text(render_card(data), encoding="utf-8")
    return [FILE, *plots.values()]
