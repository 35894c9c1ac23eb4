"""Clean: keep items with a usable title, description and image URL; count the others."""

from __future__ import annotations

from pathlib import Path

from pipeline import workdir
from pipeline.db import connect
from pipeline.io import atomic_path, update_stats
from pipeline.sql import load_sql, quote_literal


def clean_items(
    work: Path,
    min_title_chars: int = 3,
    min_description_chars: int = 10,
    features_as_description: bool = True,
) -> dict:
    """``items.parquet`` -> ``items_clean.parquet`` + ``item_rejects.parquet``; returns stats."""
    work = Path(work)
    con = connect()
    con.execute(
        load_sql("clean_items"),
        {
            "items": str(work / workdir.ITEMS),
            "min_title_chars": min_title_chars,
            "min_description_chars": min_description_chars,
            "features_as_description": features_as_description,
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
        "items_usable": kept,
        "items_unusable": sum(by_reason.values()),
        "items_unusable_by_reason": by_reason,
    }
    update_stats(work, {"clean": stats})
    return stats
