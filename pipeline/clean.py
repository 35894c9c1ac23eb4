"""Clean: keep items with a usable title, description and image URL; count the others."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import workdir
from pipeline.db import open_db
from pipeline.io import atomic_path
from pipeline.modality import modalities, text_only
from pipeline.params import param
from pipeline.resources import Resources
from pipeline.sql import load_sql, quote_literal


@dataclass(frozen=True)
class CleanParams:
    min_title_chars: int = param(3, "an item needs a title of at least this many characters")
    min_description_chars: int = param(10, "... and a description of at least this many characters")
    features_as_description: bool = param(
        True, "the feature bullets stand in for an empty description"
    )


def clean_items(work: Path, p: CleanParams = CleanParams(), res: Resources = Resources()) -> dict:
    """``items.parquet`` -> ``items_clean.parquet`` + ``item_rejects.parquet``; returns stats."""
    work = Path(work)
    con = open_db(work, res)
    con.execute(
        load_sql("clean_items"),
        {
            "items": str(workdir.require(work / workdir.ITEMS, "items (run ingest with --meta)")),
            "min_title_chars": p.min_title_chars,
            "min_description_chars": p.min_description_chars,
            "features_as_description": p.features_as_description,
            "need_image": not text_only(work),
        },
    )
    with atomic_path(work / workdir.ITEMS_CLEAN) as tmp:
        con.execute(
            f"COPY (SELECT * EXCLUDE (reject_reason) FROM judged WHERE reject_reason IS NULL "
            f"ORDER BY asin) TO {quote_literal(str(tmp))} (FORMAT parquet)"
        )
    with atomic_path(work / workdir.ITEM_REJECTS) as tmp:
        con.execute(
            f"COPY (SELECT asin, reject_reason AS reason FROM judged "
            f"WHERE reject_reason IS NOT NULL ORDER BY asin) TO {quote_literal(str(tmp))} "
            "(FORMAT parquet)"
        )
    by_reason = dict(
        con.execute(
            "SELECT reject_reason, count(*) FROM judged WHERE reject_reason IS NOT NULL "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    kept = con.execute("SELECT count(*) FROM judged WHERE reject_reason IS NULL").fetchall()[0][0]
    stats = {
        "modalities": list(modalities(work)),
        "items_usable": kept,
        "items_unusable": sum(by_reason.values()),
        "items_unusable_by_reason": by_reason,
    }
    return stats
