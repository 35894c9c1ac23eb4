"""Ingest: the fetched dumps -> canonical ``reviews.parquet`` and ``items.parquet`` (DuckDB).

The fetch stage (``pipeline.sources.stage``) has put a local copy of every input in place and
listed them in ``sources.json``; ingest reads those copies and never the network.

Every file is read by DuckDB in one streaming pass. JSON lines are read as text lines and
parsed with ``json_transform`` against an explicit schema, rather than with read_ndjson's
``ignore_errors``, because that drops bad lines without saying which or why: here every bad
line is counted by reason and a sample lands in ``rejects.jsonl``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline import workdir
from pipeline.db import count, open_db
from pipeline.errors import UserError
from pipeline.io import atomic_path
from pipeline.params import param
from pipeline.resources import Resources
from pipeline.sources import m2
from pipeline.sources.detect import (
    FORMATS,
    MAX_LINE,
    FormatError,
    copy_bare_cr_as_space,
    detect_format,
    gzip_truncation_offset,
    head_records,
    last_line_complete,
    scan_end,
)
from pipeline.sources.fetch import Source, fetch
from pipeline.sources.image_urls import apply_image_urls
from pipeline.sources.stage import load_sources
from pipeline.sql import execute_script, load_sql, quote_literal

log = logging.getLogger(__name__)

LINE_DELIM = "\x1f"  # never appears unescaped in valid JSON, so a line stays one column
REJECT_SAMPLE_PER_REASON = 20


class IngestError(UserError):
    """A file cannot be read at all; the message names the file and the place."""


# m2: Amazon-M2 sessions / products CSVs (pipeline/sources/m2.py), detected from the header.
INGEST_FORMATS = (*FORMATS, "m2")


@dataclass(frozen=True)
class IngestParams(m2.M2Params):
    format: str = param(
        "auto",
        "input format; auto detects it from the name and the first records",
        choices=("auto", *INGEST_FORMATS),
    )
    verified_only: bool = param(False, "use verified purchases only")
    prefer_image_urls: bool = param(
        False, "take the --image-urls lists' URL even where the metadata has a usable one"
    )


def _lines_view(con: duckdb.DuckDBPyConnection, path: Path, layout: str, tag: str) -> None:
    # One bound on a record, MAX_LINE (16 MB), set explicitly: a longer line is a counted
    # `oversize_line`; an array whose first element is longer is refused by detection.
    qpath = quote_literal(str(path))
    if layout == "array":
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW lines AS SELECT json::VARCHAR AS line "
            f"FROM read_json_objects({qpath}, format = 'array', maximum_object_size = {MAX_LINE})"
        )
        return
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW lines AS SELECT line FROM read_csv({qpath},
            columns = {{'line': 'VARCHAR'}}, delim = {quote_literal(LINE_DELIM)}, quote = '',
            escape = '', header = false, auto_detect = false, new_line = '\\n',
            max_line_size = {MAX_LINE}, strict_mode = false,
            store_rejects = true, rejects_table = 'rej_{tag}', rejects_scan = 'scan_{tag}')"""
    )


def _csv_view(con: duckdb.DuckDBPyConnection, src: Source, tag: str) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW csv_rows AS SELECT * FROM read_csv(
            {quote_literal(str(src.path))}, header = false, auto_detect = false, delim = ',',
            columns = {{'item': 'VARCHAR', 'user_id': 'VARCHAR', 'rating': 'VARCHAR',
                        'ts': 'VARCHAR'}},
            store_rejects = true, rejects_table = 'rej_{tag}', rejects_scan = 'scan_{tag}')"""
    )


def _stage_file(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    fmt: str,
    kind: str,
    out: Path,
    tag: str,
    locales: tuple[str, ...] = (),
    path: Path | None = None,
) -> None:
    """COPY one input file (or ``path``, a cleaned copy of it) into a staging parquet of
    canonical rows + reject_reason."""
    if fmt in m2.FORMATS:
        m2.stage(con, src.path, fmt, out, tag, locales, prefix=m2.session_prefix(src.uri))
        return
    if fmt == "parquet":
        if kind == "items":
            raise IngestError(f"{src.uri}: a parquet purchase table has no item metadata")
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW parquet_rows AS SELECT * FROM "
            f"read_parquet({quote_literal(str(src.path))})"
        )
        cols = {c[0] for c in con.execute("DESCRIBE parquet_rows").fetchall()}
        if not {"user_id", "item_id"} <= cols:
            raise IngestError(f"{src.uri}: parquet input needs columns user_id, item_id")
        query = load_sql("reviews_parquet")
    elif fmt == "csv":
        if kind == "items":
            raise IngestError(f"{src.uri}: a ratings CSV has no item metadata")
        _csv_view(con, src, tag)
        query = load_sql("reviews_csv")
    else:
        _, layout = head_records(src.path)
        _lines_view(con, path or src.path, layout, tag)
        execute_script(con, "json_docs")
        if kind == "items":  # the format's fields as view item_typed, then the shared checks
            execute_script(con, f"items_{fmt}")
            query = load_sql("items_checked")
        else:
            query = load_sql(f"reviews_{fmt}")
    try:
        con.execute(f"COPY ({query}) TO {quote_literal(str(out))} (FORMAT parquet)")
    except duckdb.Error as e:
        raise _explain_read_error(src, e, out) from e


def _no_space(e: BaseException, path: Path) -> IngestError | None:
    """A full disk, told as such (not as an input that cannot be read), naming the file
    being written: DuckDB's own message names it when it is a spill file."""
    msg = str(e)
    if not (
        (isinstance(e, OSError) and e.errno == errno.ENOSPC)
        or "No space left on device" in msg
        or "not enough space" in msg.lower()
    ):
        return None
    named = re.search(r'"(/[^"]+)"', msg)
    return IngestError(f"no space left writing {named.group(1) if named else path}")


def _explain_read_error(src: Source, e: duckdb.Error, out: Path) -> IngestError:
    msg = str(e)
    if full := _no_space(e, out):
        return full
    if "Out of Memory" in msg:
        return IngestError(
            f"{src.uri}: out of memory while reading it ({msg.splitlines()[0]}); "
            "raise --memory-limit / ACMMG_DUCKDB_MEMORY"
        )
    if "unexpected end of data" in msg and not last_line_complete(src.path):
        return IngestError(
            f"{src.uri}: looks truncated: the JSON array breaks off before its end "
            f"({msg.splitlines()[0]})"
        )
    if "maximum_object_size" in msg:
        return IngestError(f"{src.uri}: a JSON record is over {MAX_LINE} bytes: {msg}")
    if "gzip" in msg.lower() or "GZIP" in msg:
        try:
            read, produced = gzip_truncation_offset(src.path)
            where = (
                f"the compressed stream breaks off at byte {read} of {src.size} "
                f"(after {produced} decompressed bytes)"
            )
        except Exception as scan_error:  # noqa: BLE001 - reported inside the message
            where = f"the stream is corrupt ({scan_error})"
        return IngestError(f"{src.uri}: truncated or corrupt gzip file: {where}")
    return IngestError(f"{src.uri}: cannot be read: {msg.splitlines()[0]}")


# DuckDB's line-level errors, by the reason ingest reports for them.
_CSV_REASONS = {"INVALID ENCODING": "encoding", "LINE SIZE OVER MAXIMUM": "oversize_line"}


def _collect_rejects(
    con: duckdb.DuckDBPyConnection, src: Source, staged: Path, fmt: str, tag: str
) -> tuple[dict[str, int], list[dict]]:
    """Counts by reason and a sample of the rejected rows of one staged file."""
    counts: dict[str, int] = {}
    sample: list[dict] = []
    rows = con.execute(
        f"""SELECT reject_reason, count(*) FROM read_parquet({quote_literal(str(staged))})
            WHERE reject_reason IS NOT NULL GROUP BY ALL ORDER BY 1"""
    ).fetchall()
    counts.update({r: n for r, n in rows})
    for reason, raw in con.execute(
        f"""SELECT reject_reason, left(raw, 2000) FROM read_parquet({quote_literal(str(staged))})
            WHERE reject_reason IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY reject_reason ORDER BY raw) <= {REJECT_SAMPLE_PER_REASON}
            ORDER BY 1, 2"""
    ).fetchall():
        sample.append({"file": src.uri, "reason": reason, "raw": raw})
    if fmt in ("2023", "2018", "csv", *m2.FORMATS):
        try:
            csv_rejects = con.execute(
                f"SELECT line, error_type, csv_line FROM rej_{tag} ORDER BY line"
            ).fetchall()
        except duckdb.CatalogException:
            csv_rejects = []  # JSON-array layout reads no CSV
        for line, etype, csv_line in csv_rejects:
            reason = _CSV_REASONS.get(str(etype), f"csv:{str(etype).lower()}")
            counts[reason] = counts.get(reason, 0) + 1
            if sum(1 for s in sample if s["reason"] == reason) < REJECT_SAMPLE_PER_REASON:
                sample.append(
                    {
                        "file": src.uri,
                        "reason": reason,
                        "line": line,
                        "raw": (csv_line or "")[:2000],
                    }
                )
    return counts, sample


def _check_not_all_bad(src: Source, staged_good: int, counts: dict[str, int]) -> None:
    # Rows of an unselected M2 market are a selection, not bad lines.
    bad = sum(v for k, v in counts.items() if k != "other_locale")
    if staged_good == 0 and bad > 0:
        raise IngestError(
            f"{src.uri}: no valid record in {bad} lines (reasons: {counts}); "
            "is this the right file and --format?"
        )


def _resolve(sources: list[Source], fmt: str, kind: str = "") -> list[tuple[Source, str]]:
    """Each source with its format (detected when ``fmt`` is auto)."""
    out = []
    for src in sources:
        uri = src.uri
        m2_fmt = _m2_format(src, fmt, kind)
        if m2_fmt:
            out.append((src, m2_fmt))
            continue
        try:
            f = detect_format(src.path) if fmt == "auto" else fmt
            if f in ("2023", "2018"):
                head_records(src.path)  # a file that is not JSON at all stops here
        except FormatError as e:
            raise IngestError(str(e).replace(str(src.path), uri)) from e
        if f not in FORMATS:
            raise IngestError(f"unknown format {f!r} (expected auto or one of {INGEST_FORMATS})")
        out.append((src, f))
    return out


def _m2_format(src: Source, fmt: str, kind: str) -> str | None:
    """'m2_sessions' / 'm2_products' for an Amazon-M2 file (by its header) under ``--format
    m2`` or auto, else None; a file of the wrong M2 kind for its place is refused."""
    if fmt not in ("auto", "m2"):
        return None
    found = m2.detect_m2(src.path)
    if found is None:
        if fmt == "m2":
            raise IngestError(
                f"{src.uri}: not an Amazon-M2 file (header {m2.read_header(src.path)[:12]})"
            )
        return None
    want = {"reviews": "m2_sessions", "items": "m2_products"}.get(kind, found)
    if found != want:
        where = "--reviews takes sessions" if kind == "reviews" else "--meta takes products"
        raise IngestError(f"{src.uri}: an Amazon-M2 {found[3:]} file; {where} files")
    return found


def _stage_all(
    con: duckdb.DuckDBPyConnection,
    sources: list[tuple[Source, str]],
    kind: str,
    stage_dir: Path,
    notes: dict | None = None,
    locales: tuple[str, ...] = (),
) -> tuple[list[Path], dict[str, int], list[dict], int]:
    """Stage every file; ``notes`` collects what was repaired or looks wrong without being a
    rejection (stats keys ``inputs_look_truncated``, ``inputs_with_bare_cr``,
    ``lone_surrogates_replaced``)."""
    notes = {} if notes is None else notes
    execute_script(con, "ingest_macros")
    staged, counts, sample, total = [], {}, [], 0
    for i, (src, fmt) in enumerate(sources):
        out = stage_dir / f"{kind}_{i}.parquet"
        tag = f"{kind}_{i}"
        _stage_file(con, src, fmt, kind, out, tag, locales)
        c, s = _collect_rejects(con, src, out, fmt, tag)
        # Only a JSON file with rejected lines is read again (once: its end, its bare CRs);
        # a CSV line has no syntax to tell it is whole.
        if fmt in ("2023", "2018") and (c.get("bad_json") or c.get("encoding")):
            tail, bare_cr = scan_end(src.path)
            if bare_cr and c.get("bad_json"):
                c, s = _restage_bare_cr(con, src, fmt, kind, out, tag, stage_dir, notes)
            _note_truncation(src, tail, c, s, notes)
        good, repaired = _good_rows(con, out)
        if repaired:
            notes["lone_surrogates_replaced"] = notes.get("lone_surrogates_replaced", 0) + repaired
            log.warning(
                "%s: %d lines with a lone surrogate escape, replaced by U+FFFD", src.uri, repaired
            )
        if fmt in m2.FORMATS:  # a session is several rows: count sessions, as read
            good = con.execute(
                f"SELECT count(DISTINCT row_no) FROM read_parquet({quote_literal(str(out))}) "
                "WHERE reject_reason IS NULL"
            ).fetchall()[0][0]
        _check_not_all_bad(src, good, c)
        log.info("%s: %d %s records, %d rejected", src.uri, good, kind, sum(c.values()))
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
        sample.extend(s)
        total += good + sum(c.values())
        staged.append(out)
    return staged, counts, sample, total


def _good_rows(con: duckdb.DuckDBPyConnection, staged: Path) -> tuple[int, int]:
    """(kept rows, kept rows whose line needed a surrogate repair) of one staged file."""
    path = quote_literal(str(staged))
    cols = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()}
    repaired = "count(*) FILTER (WHERE repaired)" if "repaired" in cols else "0"
    good, n = con.execute(
        f"SELECT count(*), {repaired} FROM read_parquet({path}) WHERE reject_reason IS NULL"
    ).fetchall()[0]
    return good, n or 0


def _restage_bare_cr(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    fmt: str,
    kind: str,
    out: Path,
    tag: str,
    stage_dir: Path,
    notes: dict,
) -> tuple[dict[str, int], list[dict]]:
    """Stage again from a copy where each bare ``\r`` is a space: DuckDB's line reader ends a
    line at a bare ``\r``, which in a ``\n``-terminated JSON file is only whitespace."""
    copy = stage_dir / f"{tag}.cr.jsonl"
    copy_bare_cr_as_space(src.path, copy)
    con.execute(f"DROP TABLE IF EXISTS rej_{tag}; DROP TABLE IF EXISTS scan_{tag}")
    _stage_file(con, src, fmt, kind, out, tag, path=copy)
    copy.unlink()
    notes.setdefault("inputs_with_bare_cr", []).append(src.uri)
    log.warning("%s: bare carriage returns inside lines, read as spaces", src.uri)
    return _collect_rejects(con, src, out, fmt, tag)


def _note_truncation(
    src: Source, tail: bytes | None, counts: dict[str, int], sample: list[dict], notes: dict
) -> None:
    """A file whose last line (in ``tail``) is cut and does not parse: that line is counted as
    ``truncated_last_line`` (not ``bad_json``) and the stats name the file."""
    cut_reason = next((r for r in ("bad_json", "encoding") if counts.get(r)), None)
    if cut_reason is None:
        return
    if tail is not None and last_line_complete(src.path, tail=tail):
        return
    counts[cut_reason] -= 1
    if not counts[cut_reason]:
        del counts[cut_reason]
    counts["truncated_last_line"] = 1
    last = (tail or b"").rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")[:2000]
    for entry in sample:
        if entry["reason"] == cut_reason and entry["raw"] == last:
            sample.remove(entry)
            break
    sample.append({"file": src.uri, "reason": "truncated_last_line", "raw": last})
    notes.setdefault("inputs_look_truncated", []).append(src.uri)
    log.warning("%s: the last line is cut off; the input looks truncated", src.uri)


def _staged_view(con: duckdb.DuckDBPyConnection, staged: list[Path], name: str = "staged") -> None:
    # By name: staging queries may add bookkeeping columns (``repaired``) that others lack.
    files = "[" + ", ".join(quote_literal(str(p)) for p in staged) + "]"
    scan = f"read_parquet({files}, union_by_name = true)"
    cols = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    keep = ", ".join(f'"{c}"' for c in cols if c not in ("reject_reason", "raw", "repaired"))
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {keep} FROM {scan} "
        "WHERE reject_reason IS NULL"
    )


def ingest_items(
    meta: list[str], work: Path, fmt: str = "auto", cache_dir: Path | None = None
) -> Path:
    """Metadata dumps (fetched here) -> ``work/items.parquet`` (one row per asin), for the
    image stage on a graph built without metadata. Returns its path."""
    work = Path(work)
    sources = [fetch(uri, cache_dir) for uri in meta]
    _ingest_items(sources, work, fmt, open_db(work))
    return work / workdir.ITEMS


def _ingest_items(
    meta: list[Source], work: Path, fmt: str, con, locales: tuple[str, ...] = ()
) -> dict:
    sources = _resolve(meta, fmt, "items")
    stage_dir = work / workdir.STAGING
    stage_dir.mkdir(parents=True, exist_ok=True)
    notes: dict = {}
    staged, counts, sample, total = _stage_all(
        con, sources, "items", stage_dir, notes, locales=locales
    )
    is_m2 = [f == "m2_products" for _, f in sources]
    if any(is_m2) and not all(is_m2):  # M2 products + Amazon metadata: joined by ASIN
        _staged_view(con, [p for p, m in zip(staged, is_m2, strict=True) if m], "m2_items")
        _staged_view(con, [p for p, m in zip(staged, is_m2, strict=True) if not m], "other_items")
        execute_script(con, "m2_join_2023")
    else:
        _staged_view(con, staged)
    # An item listed twice (several files, or repeated lines): keep the richest row.
    with _writing(work / workdir.ITEMS) as tmp:
        con.execute(
            f"""COPY (
                SELECT * FROM staged
                QUALIFY row_number() OVER (
                    PARTITION BY asin ORDER BY (title IS NULL), len(description) DESC,
                    (image_url IS NULL), title, image_url) = 1
                ORDER BY asin
            ) TO {quote_literal(str(tmp))} (FORMAT parquet)"""
        )
    items = con.execute(
        f"SELECT count(*) FROM read_parquet({quote_literal(str(work / workdir.ITEMS))})"
    ).fetchall()[0][0]
    _append_rejects(work, sample)
    return {
        "items_read": total,
        "items_rejected": sum(counts.values()),
        "items_rejected_by_reason": counts,
        "item_duplicates_dropped": total - sum(counts.values()) - items,
        "items_in_metadata": items,
        "sources_meta": [s.fingerprint() for s, _ in sources],
        **{f"items_{k}" if k == "lone_surrogates_replaced" else k: v for k, v in notes.items()},
    }


@contextlib.contextmanager
def _writing(path: Path):
    """atomic_path, with a full disk told as one line naming ``path``."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except (OSError, duckdb.Error) as e:
        if full := _no_space(e, path):
            raise full from e
        raise


def _append_rejects(work: Path, sample: list[dict]) -> None:
    path = work / workdir.REJECTS
    old = path.read_text() if path.exists() else ""
    with _writing(path) as tmp:
        tmp.write_text(old + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))


def ingest(work: Path, p: IngestParams = IngestParams(), res: Resources = Resources()) -> dict:
    """The dumps listed in ``work/sources.json`` -> canonical tables in ``work``; returns the
    stats."""
    work = Path(work)
    listed = load_sources(work)
    if not listed["reviews"]:
        raise UserError(f"{work / workdir.SOURCES} lists no review dump")
    (work / workdir.REJECTS).unlink(missing_ok=True)
    con = open_db(work, res)
    try:
        return _ingest(con, work, listed, p)
    except duckdb.Error as e:  # a full spill directory, the disk under a table, no memory
        if full := _no_space(e, work / workdir.DUCKDB_TMP):
            raise full from e
        if "Out of Memory" in str(e):
            raise IngestError(
                f"out of memory ingesting into {work} ({str(e).splitlines()[0]}); "
                "raise --memory-limit / ACMMG_DUCKDB_MEMORY"
            ) from e
        raise
    finally:
        con.close()


def _purchases_only(sources: list[tuple[Source, str]]) -> bool:
    """Every input a bare (user, item) table, so ``reviews_purchases.sql`` gives the result."""
    return all(f == "parquet" for _, f in sources)


def _ingest(con: duckdb.DuckDBPyConnection, work: Path, listed: dict, p: IngestParams) -> dict:
    fmt, verified_only = p.format, p.verified_only
    sources = _resolve(listed["reviews"], fmt, "reviews")
    sessions = [f == "m2_sessions" for _, f in sources]
    if verified_only and any(sessions):
        raise UserError("verified_only: Amazon-M2 sessions have no verified-purchase flag")
    if verified_only and any(f == "parquet" for _, f in sources):
        raise UserError("verified_only: a (user_id, item_id) parquet table has no verified flag")
    locales = m2.select_locales(p.locale)
    stage_dir = work / workdir.STAGING
    stage_dir.mkdir(parents=True, exist_ok=True)
    notes: dict = {}
    staged, counts, sample, total = _stage_all(
        con, sources, "reviews", stage_dir, notes, locales=locales
    )
    _staged_view(con, staged)
    # Rows, not records: an M2 session is several rows (one per item).
    good = con.execute("SELECT count(*) FROM staged").fetchall()[0][0]
    purchases_only = _purchases_only(sources)
    if purchases_only:  # ids only: one pass instead of two over 20 M rows
        con.execute(load_sql("reviews_purchases"))
    else:
        distinct, unverified = con.execute(load_sql("reviews_counts")).fetchall()[0]
        unverified = unverified if verified_only else 0
        con.execute(load_sql("reviews_finalize"), {"verified_only": verified_only})
    kept = count(con, "SELECT count(*) FROM reviews")
    if purchases_only:  # distinct rows are the kept rows
        distinct, unverified = kept, 0
    with _writing(work / workdir.REVIEWS) as tmp:
        con.execute(
            f"COPY (SELECT * FROM reviews ORDER BY asin, user_id) TO {quote_literal(str(tmp))} "
            "(FORMAT parquet)"
        )
    _append_rejects(work, sample)
    (work / workdir.SESSIONS).unlink(missing_ok=True)
    m2_stats = {}
    if any(sessions):  # the ordered sessions, for next-item tasks (published as sessions.parquet)
        m2_stats = {
            "m2_locales": list(locales),
            "m2_sessions": m2.write_session_list(
                con,
                [f for f, s in zip(staged, sessions, strict=True) if s],
                work / workdir.SESSIONS,
            ),
        }
    stats = {
        "reviews_read": total,
        "reviews_rejected": sum(counts.values()),
        "rejected_by_reason": counts,
        "duplicates_dropped": good - distinct,
        "unverified_dropped": unverified,
        "repeat_reviews_dropped": distinct - unverified - kept,
        "reviews_kept": kept,
        "sources": [s.fingerprint() for s, _ in sources],
        **notes,  # only when something looked wrong: a clean input's stats stay as they were
        **m2_stats,
    }
    if listed["meta"]:
        # Under --format m2 the metadata may mix products_train.csv and Amazon 2023 dumps.
        meta_fmt = fmt if fmt in ("2023", "2018") else "auto"
        items = _ingest_items(listed["meta"], work, meta_fmt, con, locales)
        for key in ("inputs_look_truncated", "inputs_with_bare_cr"):
            if key in items:
                stats[key] = stats.get(key, []) + items.pop(key)
        stats.update(items)
    if listed.get("image_urls"):
        if not listed["meta"]:
            raise UserError("--image-urls gives images of the metadata's items: pass --meta too")
        url_stats, url_sample = apply_image_urls(
            con, listed["image_urls"], work / workdir.ITEMS, p.prefer_image_urls
        )
        stats.update(url_stats)
        _append_rejects(work, url_sample)
    shutil.rmtree(stage_dir, ignore_errors=True)
    return stats


__all__ = ["IngestError", "IngestParams", "ingest", "ingest_items"]
