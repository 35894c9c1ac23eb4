"""Detect which dump format a file is, from its name and its first bytes."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
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


BOM = b"\xef\xbb\xbf"
SAMPLE_BYTES = 64 << 20  # detection reads at most this much to find whole records


def _parse_head(raw: bytes) -> object:
    """One JSON text; ValueError when it is not (RecursionError included: a line of 100,000
    ``[`` must be a bad line, not a traceback)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError as e:
        raise ValueError("nested too deeply") from e


def _is_array(head: bytes) -> bool:
    """A JSON array of objects starts ``[`` then ``{`` or ``]``; a JSON-lines file whose first
    line is an array (or ``[[[[...``) is not one."""
    return head[:1] == b"[" and head[1:].lstrip()[:1] in (b"{", b"]", b"")


def _sample_lines(path: Path, budget: int = SAMPLE_BYTES):
    """(line number, bytes) of the whole lines at the head of a (possibly gzip) file, reading at
    most ``budget`` bytes. A line longer than MAX_LINE is yielded as None (ingest rejects it
    too) and skipped without holding it, so one huge first line does not hide the rest."""
    opener = gzip.open if _is_gzip(path) else open
    read = 0
    try:
        with opener(path, "rb") as f:
            lineno = 0
            while read < budget:
                raw = f.readline(MAX_LINE + 1)
                if not raw:
                    return
                lineno += 1
                read += len(raw)
                if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                    while read < budget and (rest := f.readline(1 << 20)):
                        read += len(rest)
                        if rest.endswith(b"\n"):
                            break
                    yield lineno, None
                    continue
                if not raw.endswith(b"\n") and read >= budget:
                    return  # cut by the budget, not by the file
                yield lineno, (raw[len(BOM) :] if lineno == 1 and raw.startswith(BOM) else raw)
    except (EOFError, OSError, zlib.error):
        return  # truncated gzip: the full read reports the exact place


def head_records(path: Path, limit: int = 20) -> tuple[list[dict], str]:
    """Up to ``limit`` JSON objects from the head of a JSON-lines or JSON-array file, and the
    layout ("lines" or "array"). Raises FormatError naming the file and line when the head is
    not JSON at all."""
    head = open_text_head(path)
    stripped = head.removeprefix(BOM).lstrip()
    if _is_array(stripped):
        return _head_array(path, limit), "array"
    out: list[dict] = []
    first_bad: tuple[int, bytes] | None = None
    for lineno, raw in _sample_lines(path):
        if raw is None or not raw.strip():
            continue
        try:
            obj = _parse_head(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
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


def _head_array(path: Path, limit: int) -> list[dict]:
    """The first elements of one JSON array, from a head grown until one element is whole
    (up to MAX_LINE, the size ingest accepts for one object)."""
    nbytes = HEAD_BYTES
    while True:
        head = open_text_head(path, nbytes)
        full = len(head) == nbytes
        text = head.removeprefix(BOM).lstrip()[1:].decode("utf-8", errors="replace")
        dec = json.JSONDecoder()
        out, pos = [], 0
        try:
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
                    if full and nbytes < MAX_LINE:
                        raise _GrowHead from e
                    if full:
                        raise FormatError(
                            f"{path}: the first JSON array element is over {MAX_LINE} bytes "
                            "(the bound on one record)"
                        ) from e
                    raise FormatError(
                        f"{path}: not a JSON array of objects (byte {e.pos + 1})"
                    ) from e
                except RecursionError as e:
                    raise FormatError(f"{path}: not a JSON array: nested too deeply") from e
                out.append(obj)
        except _GrowHead:
            nbytes = min(nbytes * 8, MAX_LINE + 1)
            continue
        return out


class _GrowHead(Exception):
    pass


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
    # Each head record votes for its own format, the majority wins (2023 on a tie): in a mixed
    # file the minority's lines are then rejected as `other_format` by ingest.
    votes = Counter(f for r in records if (f := _keys_format(set(r))))
    keys = set().union(*(r.keys() for r in records))
    fmt = max(votes, key=lambda f: (votes[f], f == "2023")) if votes else _keys_format(keys)
    if fmt is None:
        raise FormatError(
            f"{path}: JSON, but not an Amazon review or metadata dump (keys: {sorted(keys)[:12]})"
        )
    return fmt


def _keys_format(keys: set[str]) -> str | None:
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
    return None


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


def read_tail(path: Path, chunk: int = 1 << 20) -> bytes | None:
    """The end of a (possibly gzip) text file: its last line (up to MAX_LINE bytes) and the
    newline before; None when a gzip stream stops before its trailer. A gzip file is read to
    its end (its trailer is the only proof it is whole); a plain file only at its tail."""
    path = Path(path)
    return _gzip_tail(path, chunk) if _is_gzip(path) else _file_tail(path)


def last_line_complete(path: Path, chunk: int = 1 << 20, tail: bytes | None = None) -> bool:
    """Whether a (possibly gzip) text file ends on a whole record: a gzip stream that reaches
    its trailer, and whose text ends with a newline, closes a JSON array, or has a last line
    that parses as JSON. False means the file looks cut off. ``tail``: read_tail's answer,
    when the caller has it already."""
    path = Path(path)
    head = open_text_head(path, 4096).removeprefix(BOM).lstrip()
    tail = read_tail(path, chunk) if tail is None else tail
    if tail is None:
        return False  # the gzip stream stops before its trailer
    if not tail.strip() or tail.endswith(b"\n"):
        return True
    if head[:1] == b"[" and tail.rstrip().endswith(b"]"):
        return True
    try:
        _parse_head(tail.rsplit(b"\n", 1)[-1])
    except ValueError:
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


def _gzip_tail(path: Path, chunk: int, cr: _BareCr | None = None) -> bytes | None:
    """The end of a gzip file's text as _file_tail, or None when the stream is cut short;
    ``cr`` sees every decompressed block on the way (one pass for both answers)."""
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
                if cr is not None:
                    cr.feed(out)
                tail += out
                cut = tail.rfind(b"\n", 0, len(tail) - 1)
                tail = tail[cut:] if cut > 0 else tail[-MAX_LINE:]
    except zlib.error:
        return None
    return tail if d.eof else None


class _BareCr:
    """Counts ``\r`` not followed by ``\n`` over a stream of blocks, and whether any ``\n``
    was seen."""

    def __init__(self) -> None:
        self.n, self.newline, self.prev_cr = 0, False, False

    def feed(self, block: bytes) -> None:
        if not block:
            return
        self.newline = self.newline or b"\n" in block
        if self.prev_cr and not block.startswith(b"\n"):
            self.n += 1
        self.n += block.count(b"\r") - block.count(b"\r\n") - block.endswith(b"\r")
        self.prev_cr = block.endswith(b"\r")

    def count(self) -> int:
        """0 when the text has no ``\n`` at all (then ``\r`` is its line end)."""
        return (self.n + self.prev_cr) if self.newline else 0


def scan_end(path: Path, chunk: int = 1 << 20) -> tuple[bytes | None, int]:
    """(read_tail's answer, how many ``\r`` not followed by ``\n`` the text holds) with one
    read of the file (for a gzip file, one decompression to its end). The count is 0 when the
    text has no ``\n`` at all: DuckDB's line reader ends a line at every ``\r``, but in a
    ``\n``-terminated JSON file a bare one can only be whitespace."""
    path = Path(path)
    cr = _BareCr()
    if _is_gzip(path):
        return _gzip_tail(path, chunk, cr), cr.count()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            cr.feed(block)
    return _file_tail(path), cr.count()


def copy_bare_cr_as_space(path: Path, out: Path, chunk: int = 1 << 20) -> None:
    """A plain copy of a (possibly gzip) file with each bare ``\\r`` turned into a space."""
    opener = gzip.open if _is_gzip(path) else open
    carry = b""
    with opener(path, "rb") as f, open(out, "wb") as w:
        while block := f.read(chunk):
            block = carry + block
            carry = b"\r" if block.endswith(b"\r") else b""
            block = block[: len(block) - len(carry)]
            w.write(re.sub(rb"\r(?!\n)", b" ", block))
        w.write(b" " if carry else b"")
