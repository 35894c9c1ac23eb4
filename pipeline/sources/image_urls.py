"""Image-URL lists as an image source (``--image-urls FILE.csv``, repeatable).

The files are SQID's ``product_image_urls.csv`` / ``supp_product_image_urls.csv`` layout:
columns ``product_id,image_url`` (../shared/seeds/001_6faff9b5348246a3.txt). An item whose
metadata has no usable image URL (none, not http(s), or on the registry's placeholder list)
takes the list's URL for its asin (for Amazon-M2 items of all markets, its bare id); with
``prefer_image_urls`` every listed item does. Rows are judged by ``sql/image_urls.sql``:
placeholder URLs (``pipeline.images.config.PLACEHOLDER_URLS``, e.g. SQID's 442 rows of
Amazon's default digital-video art) are refused by rule and counted, like bad rows. The URL
is kept as given: the image stage fetches its full-size form and records both
(``url`` / ``fetch_url`` in images.parquet).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipeline.errors import UserError
from pipeline.images.config import PLACEHOLDER_URLS
from pipeline.io import atomic_path
from pipeline.sources.fetch import Source
from pipeline.sources.m2 import read_header
from pipeline.sql import execute_script, quote_literal

COLUMNS = ("product_id", "image_url")
REJECT_SAMPLE = 20


def _rows_view(con: duckdb.DuckDBPyConnection, sources: Sequence[Source]) -> None:
    selects = []
    for i, src in enumerate(sources):
        header = tuple(read_header(src.path))
        if header[:2] != COLUMNS:
            raise UserError(
                f"{src.uri}: not an image-URL list: header {list(header)[:6]}, expected "
                f"{','.join(COLUMNS)}"
            )
        cols = {c: "VARCHAR" for c in header}
        selects.append(
            f"SELECT {i} AS file_no, CAST(row_number() OVER () AS BIGINT) AS row_no, "
            f"product_id, image_url FROM read_csv({quote_literal(str(src.path))}, "
            f"header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
            f"columns = {cols!r}, strict_mode = false)"
        )
    con.execute("CREATE OR REPLACE TEMP VIEW image_url_rows AS " + " UNION ALL ".join(selects))


def apply_image_urls(
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[Source],
    items: Path,
    prefer: bool = False,
    patterns: Sequence[str] = PLACEHOLDER_URLS,
) -> tuple[dict, list[dict]]:
    """Rewrite ``items`` (parquet, in place, atomically) with the lists' URLs; returns the
    stats and a sample of the refused rows (for rejects.jsonl)."""
    _rows_view(con, sources)
    cols = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{items}')").fetchall()}
    key = "item_id" if "item_id" in cols else "asin"  # M2 items of all markets: the bare id
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW items_keyed AS SELECT *, {key} AS key_value "
        f"FROM read_parquet({quote_literal(str(items))})"
    )
    execute_script(con, "image_urls", {"patterns": list(patterns), "prefer": prefer})
    with atomic_path(items) as tmp:
        con.execute(
            f"COPY (SELECT * EXCLUDE (used_list) FROM items_with_urls) "
            f"TO {quote_literal(str(tmp))} (FORMAT parquet)"
        )
    by_reason = dict(
        con.execute(
            "SELECT reason, count(*) FROM image_urls_judged WHERE reason IS NOT NULL "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    read = con.execute("SELECT count(*) FROM image_urls_judged").fetchall()[0][0]
    used = con.execute("SELECT count(*) FROM items_with_urls WHERE used_list").fetchall()[0][0]
    sample = [
        {"file": sources[f].uri, "reason": r, "line": n + 1, "raw": f"{p},{u}"}
        for f, n, r, p, u in con.execute(
            f"""SELECT file_no, row_no, reason, coalesce(product_id, ''), coalesce(url, '')
                FROM image_urls_judged WHERE reason IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY reason ORDER BY file_no, row_no)
                    <= {REJECT_SAMPLE}
                ORDER BY reason, file_no, row_no"""
        ).fetchall()
    ]
    stats = {
        "image_urls_read": read,
        "image_urls_rejected": sum(by_reason.values()),
        "image_urls_rejected_by_reason": by_reason,
        "image_urls_used": used,
        "image_urls_preferred": prefer,
        "sources_image_urls": [s.fingerprint() for s in sources],
    }
    return stats, sample


__all__ = ["COLUMNS", "apply_image_urls"]
