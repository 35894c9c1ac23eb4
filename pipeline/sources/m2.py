"""Amazon-M2 (KDD Cup 2023) files -> canonical staged rows, in DuckDB.

The files as distributed (../shared/seeds/002_d556428ef0a91f7b.txt):

- ``sessions_train.csv``: ``prev_items,next_item,locale``; ``sessions_test_task{1,2,3}.csv``:
  ``prev_items,locale``. ``prev_items`` is a numpy-printed list of item ids in one quoted
  field, ``"['B09W9FND7K' 'B09JSPLN1M']"``, space separated and wrapped over lines when
  long (commas between the ids are accepted too).
- ``products_train.csv``: ``id,locale,title,price,brand,color,size,model,material,author,
  desc``, multilingual; the same ``id`` may be listed in several of the six locales.

A session is the "user" of the co-occurrence graph: staging a sessions file gives one row per
(session, item) in the columns of ingest's staged reviews (``user_id`` = the session id,
``asin``, review columns left empty) plus ``item_id``, ``position`` (0-based; the next item
last), ``locale``, ``is_next``, ``row_no`` and ``reject_reason`` / ``raw``, so
``reviews_finalize.sql`` and the graph stage take them as they are
(``sql/m2_sessions.sql``). Staging ``products_train.csv`` gives ingest's item columns plus
M2's own (``sql/m2_products.sql``).

Keys. A session id is ``<file stem>:<row number>`` (``sessions_test_task1:1`` is the first
data row of that file, counting the CSV records DuckDB reads; a line the CSV reader rejects
is counted as a reject and gets no number). With one market selected (``--locale UK``) an
item's asin is its bare id (``B09W9FND7K``), so it joins Amazon 2023 metadata and image-URL
lists by ASIN; with several (the default: all six) it is ``<LOCALE>:<id>``
(``UK:B09W9FND7K``), since one id is a different listing (language, title, price) in each
market. Rows of an unselected market are kept as ``reject_reason = 'other_locale'`` (counted,
no raw sample), so the counts add up to the file.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.db import connect, count
from pipeline.errors import UserError
from pipeline.io import atomic_path
from pipeline.params import param
from pipeline.sources.detect import open_text_head
from pipeline.sql import load_sql, quote_literal

LOCALES = ("DE", "ES", "FR", "IT", "JP", "UK")
SESSION_COLUMNS = ("prev_items", "next_item", "locale")
TEST_SESSION_COLUMNS = ("prev_items", "locale")
PRODUCT_COLUMNS = (
    "id",
    "locale",
    "title",
    "price",
    "brand",
    "color",
    "size",
    "model",
    "material",
    "author",
    "desc",
)
FORMATS = ("m2_sessions", "m2_products")
MAX_LINE_SIZE = 16 * 1024 * 1024  # one CSV record (a long description) may be this big


@dataclass(frozen=True)
class M2Params:
    """The market selection of an Amazon-M2 build."""

    locale: tuple[str, ...] = param(
        (),
        help="markets to keep: DE, ES, FR, IT, JP, UK (repeat or comma-separate; default all). "
        "One market: asins are the bare ids; several: '<LOCALE>:<id>'",
        metavar="LOCALE",
    )


def read_header(path: str | Path) -> list[str]:
    """The column names of a CSV file's first line (gzip read transparently), lowercased."""
    head = open_text_head(Path(path), 64 * 1024)
    line = head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    return [c.strip().strip('"').strip().lower() for c in line.split(",")]


def detect_m2(path: str | Path) -> str | None:
    """``'m2_sessions'`` or ``'m2_products'`` from a CSV file's header, else None."""
    cols = tuple(read_header(path))
    if cols in (SESSION_COLUMNS, TEST_SESSION_COLUMNS):
        return "m2_sessions"
    if cols == PRODUCT_COLUMNS:
        return "m2_products"
    return None


def select_locales(locales: str | Sequence[str] | None) -> tuple[str, ...]:
    """The selected markets, upper case and sorted; all six when none is given."""
    if isinstance(locales, str):
        locales = [locales]
    chosen = sorted({p.strip().upper() for loc in locales or () for p in loc.split(",")} - {""})
    unknown = [c for c in chosen if c not in LOCALES]
    if unknown:
        raise UserError(f"unknown Amazon-M2 locale {unknown}; expected some of {list(LOCALES)}")
    return tuple(chosen) or LOCALES


def item_key(item_id: str, locale: str, locales: Sequence[str]) -> str:
    """The asin of an M2 item under a market selection (the rule of the staging SQL)."""
    return item_id if len(locales) == 1 else f"{locale.upper()}:{item_id}"


def split_key(asin: str) -> tuple[str | None, str]:
    """(locale, item id) of an asin made by :func:`item_key` (locale None for a bare id)."""
    loc, sep, rest = asin.partition(":")
    return (loc, rest) if sep and loc in LOCALES else (None, asin)


def session_prefix(name: str | Path) -> str:
    """The session-id prefix of a file: its name without .csv / .gz (':' replaced)."""
    stem = Path(str(name).split("?", 1)[0]).name
    stem = re.sub(r"(\.csv)?(\.gz)?$", "", stem, flags=re.IGNORECASE)
    return stem.replace(":", "_") or "m2"


def _read_csv(path: Path, columns: Sequence[str], tag: str) -> str:
    cols = ", ".join(f"{quote_literal(c)}: 'VARCHAR'" for c in columns)
    return (
        f"read_csv({quote_literal(str(path))}, header = true, auto_detect = false, "
        f"delim = ',', quote = '\"', escape = '\"', columns = {{{cols}}}, "
        f"max_line_size = {MAX_LINE_SIZE}, store_rejects = true, "
        f"rejects_table = 'rej_{tag}', rejects_scan = 'scan_{tag}')"
    )


def create_view(con: duckdb.DuckDBPyConnection, path: str | Path, fmt: str, tag: str) -> bool:
    """The input view of ``sql/<fmt>.sql`` over one file (``m2_rows`` or
    ``m2_product_rows``, with a 1-based ``row_no`` in file order). Returns whether the file
    has a ``next_item`` column. UserError when its header is not the format's."""
    path = Path(path)
    header = tuple(read_header(path))
    if fmt == "m2_sessions":
        if header not in (SESSION_COLUMNS, TEST_SESSION_COLUMNS):
            raise UserError(
                f"{path}: not an Amazon-M2 sessions file: header {list(header)}, expected "
                f"{','.join(SESSION_COLUMNS)} or {','.join(TEST_SESSION_COLUMNS)}"
            )
        has_next = header == SESSION_COLUMNS
        select = "prev_items, next_item" if has_next else "prev_items, NULL AS next_item"
        view, columns = "m2_rows", header
        select += ", locale"
    elif fmt == "m2_products":
        if header != PRODUCT_COLUMNS:
            raise UserError(
                f"{path}: not an Amazon-M2 products file: header {list(header)}, expected "
                f"{','.join(PRODUCT_COLUMNS)}"
            )
        has_next = False
        columns = (*PRODUCT_COLUMNS[:-1], "description_raw")
        view, select = "m2_product_rows", ", ".join(columns)
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    # row_number() OVER () numbers rows in file order only while insertion order is kept
    # (stage() switches it on for the query).
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT "
        f"CAST(row_number() OVER () AS BIGINT) AS row_no, {select} "
        f"FROM {_read_csv(path, columns, tag)}"
    )
    return has_next


@contextlib.contextmanager
def _file_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    old = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if old else 'false'}")


def stage(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    fmt: str,
    out: str | Path,
    tag: str,
    locales: str | Sequence[str] | None = None,
    prefix: str | None = None,
) -> None:
    """COPY one M2 file into a staging parquet ``out``: canonical rows + ``reject_reason``
    and ``raw`` (the shape of ``pipeline.ingest._stage_file``'s files). CSV records DuckDB
    cannot read at all land in its rejects table ``rej_<tag>``. ``prefix`` of the session
    ids defaults to the file's stem."""
    path = Path(path)
    chosen = select_locales(locales)
    has_next = create_view(con, path, fmt, tag)
    params: dict = {"locales": list(chosen), "bare": len(chosen) == 1}
    if fmt == "m2_sessions":
        params.update(prefix=prefix or session_prefix(path), has_next=has_next)
    try:
        with _file_order(con):
            con.execute(
                f"COPY ({load_sql(fmt)}) TO {quote_literal(str(out))} (FORMAT parquet)", params
            )
    except (duckdb.IOException, duckdb.InvalidInputException) as e:
        raise UserError(f"{path}: cannot be read: {str(e).splitlines()[0]}") from e


def reject_counts(con: duckdb.DuckDBPyConnection, staged: str | Path, tag: str) -> dict[str, int]:
    """Rejected sessions / products of one staged file by reason, the CSV reader's included
    (``csv:<error type>``, as ingest counts them)."""
    counts = dict(
        con.execute(
            f"""SELECT reject_reason, count(*) FROM read_parquet({quote_literal(str(staged))})
                WHERE reject_reason IS NOT NULL GROUP BY ALL ORDER BY 1"""
        ).fetchall()
    )
    for (etype,) in con.execute(f"SELECT error_type FROM rej_{tag} ORDER BY line").fetchall():
        reason = "encoding" if "ENCODING" in str(etype) else f"csv:{str(etype).lower()}"
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def stage_file(
    path: str | Path,
    out: str | Path,
    fmt: str = "auto",
    locales: str | Sequence[str] | None = None,
    prefix: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> dict:
    """Stage one M2 file on its own (``fmt`` detected from the header when "auto"); returns
    {"format", "records", "rejected_by_reason"} (records: sessions or products read, CSV
    rejects included)."""
    path = Path(path)
    if fmt == "auto":
        fmt = detect_m2(path) or ""
        if not fmt:
            raise UserError(f"{path}: not an Amazon-M2 file (header {read_header(path)})")
    con = con or connect()
    stage(con, path, fmt, out, "m2", locales, prefix)
    counts = reject_counts(con, out, "m2")
    good = con.execute(
        f"SELECT count(DISTINCT row_no) FROM read_parquet({quote_literal(str(out))}) "
        "WHERE reject_reason IS NULL"
    ).fetchall()[0][0]
    return {"format": fmt, "records": good + sum(counts.values()), "rejected_by_reason": counts}


def write_session_list(
    con: duckdb.DuckDBPyConnection, staged: Sequence[str | Path], out: str | Path
) -> int:
    """``out`` (parquet): one row per good session of the staged files, with session_id,
    locale, items (asins in order), next_item and row_no (``sql/m2_session_list.sql``).
    Returns the number of sessions."""
    files = "[" + ", ".join(quote_literal(str(p)) for p in staged) + "]"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW m2_staged AS SELECT * FROM read_parquet({files}) "
        "WHERE reject_reason IS NULL"
    )
    with atomic_path(out) as tmp:
        con.execute(
            f"COPY ({load_sql('m2_session_list')}) TO {quote_literal(str(tmp))} (FORMAT parquet)"
        )
    return count(con, f"SELECT count(*) FROM read_parquet({quote_literal(str(out))})")


__all__ = [
    "FORMATS",
    "LOCALES",
    "M2Params",
    "create_view",
    "detect_m2",
    "item_key",
    "read_header",
    "reject_counts",
    "select_locales",
    "session_prefix",
    "split_key",
    "stage",
    "stage_file",
    "write_session_list",
]
