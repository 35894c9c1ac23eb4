"""Detect which dump format a file is, from its name and its first bytes."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

FORMATS = ("2023", "2018", "csv", "parquet")
HEAD_BYTES = 256 * 1024


class FormatError(ValueError):
    """A file is not in any supported format; the message names the file and the place."""


def open_text_head(path: Path, nbytes: int = HEAD_BYTES) -> bytes:
    """The first bytes of a file, decompressed when it is gzip."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rb") as g:
            try:
                return g.read(nbytes)
            except (EOFError, OSError, zlib.error):
                # Truncated inside the head: return what could be read; the full read
                # reports the exact place.
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                with open(path, "rb") as f:
                    return d.decompress(f.read(nbytes))
    with open(path, "rb") as f:
        return f.read(nbytes)


def head_records(path: Path, limit: int = 20) -> tuple[list[dict], str]:
    """Up to ``limit`` JSON objects from the head of a JSON-lines or JSON-array file, and the
    layout ("lines" or "array"). Raises FormatError naming the file and line when the head is
    not JSON at all."""
    head = open_text_head(path)
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        # One JSON array: decode the first elements with a raw decoder.
        text = stripped[1:].decode("utf-8", errors="replace")
        dec = json.JSONDecoder()
        out, pos = [], 0
        while len(out) < limit:
            while pos < len(text) and text[pos] in " \r\n\t,":
                pos += 1
            if pos >= len(text) or text[pos] == "]":
                break
            try:
                obj, pos = dec.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                if out:
                    break  # the head cut an element in half
                raise FormatError(f"{path}: not a JSON array of objects (byte {e.pos + 1})") from e
            out.append(obj)
        return out, "array"
    lines = head.split(b"\n")
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # last line may be cut by the head limit
    out: list[dict] = []
    first_bad: tuple[int, bytes] | None = None
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            first_bad = first_bad or (lineno, raw)
            continue
        if isinstance(obj, dict):
            out.append(obj)
        if len(out) >= limit:
            break
    if not out and first_bad is not None:
        lineno, raw = first_bad
        preview = raw[:60].decode("utf-8", errors="replace")
        raise FormatError(f"{path}: not JSON lines: line {lineno} is not JSON ({preview!r})")
    return out, "lines"


def detect_format(path: Path) -> str:
    """One of FORMATS (2018 also covers its metadata files), from the name and the head."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    records, _ = head_records(path)
    if not records:
        raise FormatError(f"{path}: empty, or no JSON object found in its head")
    keys = set().union(*(r.keys() for r in records))
    if keys & {"parent_asin", "user_id", "main_category", "verified_purchase", "helpful_vote"}:
        return "2023"
    if keys & {
        "reviewerID",
        "unixReviewTime",
        "overall",
        "imageURL",
        "imageURLHighRes",
        "main_cat",
    }:
        return "2018"
    if "asin" in keys and keys & {"title", "category", "description"}:
        return "2018"
    raise FormatError(
        f"{path}: JSON, but not an Amazon review or metadata dump (keys: {sorted(keys)[:12]})"
    )


def gzip_truncation_offset(path: Path) -> tuple[int, int]:
    """For a gzip file that ends early: (compressed bytes read, decompressed bytes produced)
    before the stream broke off."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    read = produced = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            read += len(block)
            produced += len(d.decompress(block))
            while d.eof and d.unused_data:  # concatenated members
                rest = d.unused_data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                produced += len(d.decompress(rest))
    return read, produced


MAX_LINE = 16 << 20  # ingest's max_line_size: a longer last line is rejected there anyway


def last_line_complete(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether a (possibly gzip) text file ends on a whole record: a gzip stream that reaches
    its trailer, and whose text ends with a newline, closes a JSON array, or has a last line
    that parses as JSON. False means the file looks cut off. A gzip file is read to its end
    (its trailer is the only proof it is whole); a plain file only at its tail."""
    path = Path(path)
    head = open_text_head(path, 4096).lstrip()
    tail = _gzip_tail(path, chunk) if _is_gzip(path) else _file_tail(path)
    if tail is None:
        return False  # the gzip stream stops before its trailer
    if not tail.strip() or tail.endswith(b"\n"):
        return True
    if head[:1] == b"[" and tail.rstrip().endswith(b"]"):
        return True
    try:
        json.loads(tail.rsplit(b"\n", 1)[-1])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _file_tail(path: Path) -> bytes:
    """The end of a plain file: its last line (up to MAX_LINE bytes) and the newline before."""
    with open(path, "rb") as f:
        pos = f.seek(0, 2)
        tail = b""
        while pos > 0 and b"\n" not in tail[:-1] and len(tail) < MAX_LINE:
            step = min(1 << 20, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    return tail


def _gzip_tail(path: Path, chunk: int) -> bytes | None:
    """The end of a gzip file's text as _file_tail, or None when the stream is cut short."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    tail = b""
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                out = d.decompress(block)
                while d.eof and d.unused_data:  # concatenated members
                    rest = d.unused_data
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    out += d.decompress(rest)
                tail += out
                cut = tail.rfind(b"\n", 0, len(tail) - 1)
                tail = tail[cut:] if cut > 0 else tail[-MAX_LINE:]
    except zlib.error:
        return None
    return tail if d.eof else None
