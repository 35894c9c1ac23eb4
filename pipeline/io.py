"""Small I/O helpers: atomic writes, JSON, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success.

    Readers never see a half-written file and a killed run leaves only a stray temp file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600; published files should be readable like any other.
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def json_text(obj: Any) -> str:
    """The one JSON form the pipeline writes: indented, keys sorted, so the bytes are
    deterministic."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (see ``json_text``)."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json_text(obj))


def write_json_if_changed(dest: str | os.PathLike, obj: Any) -> bool:
    """``write_json`` unless ``dest`` already holds exactly that; whether it wrote. A rerun
    that finds the same content leaves the file (and its mtime) alone."""
    dest = Path(dest)
    if dest.is_file() and dest.read_text() == json_text(obj):
        return False
    write_json(dest, obj)
    return True


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_memo_path() -> Path:
    return Path(os.environ.get("ACMMG_HASH_MEMO", Path.home() / ".cache" / "acmmg" / "sha256.json"))


def sha256_memo(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered by (path, size, mtime) in ``hash_memo_path()``, so that a
    multi-GB dump is hashed once however many stages (fetch, ingest, cache keys) ask."""
    path = Path(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = hash_memo_path()
    try:
        memo = read_json(memo_path)
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        memo[key] = sha256_file(path)
        # Forget files that are gone, so the memo does not grow without bound.
        memo = {k: v for k, v in memo.items() if Path(k.split("|", 1)[0]).exists()}
        write_json(memo_path, memo)
    return memo[key]


def update_stats(work: str | os.PathLike, values: dict[str, Any]) -> dict:
    """Merge ``values`` into the top level of ``work/stats.json`` and return the whole.

    The graph stage writes flat counters (``reviews_read``, ``edges``...); later stages put
    theirs under one key of their own (``{"images": {...}}``).
    """
    path = Path(work) / "stats.json"
    stats = read_json(path) if path.exists() else {}
    stats.update(values)
    write_json(path, stats)
    return stats
