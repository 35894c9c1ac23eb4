"""Resolve an input (local path, http(s) URL or fsspec URL) to a local file with a fingerprint.

Remote files are streamed into a cache directory. HTTP downloads resume with a Range request
after a dropped connection, and the sha256 of every input is recorded so that later stages
(and Prefect cache keys) can tell whether an input changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3

from pipeline.io import sha256_memo

log = logging.getLogger(__name__)

CHUNK = 1 << 16  # small, so a dropped connection loses little


class FetchError(RuntimeError):
    """An input could not be fetched; the message names the URL and why."""


@dataclass(frozen=True)
class Source:
    """A local copy of an input and where it came from."""

    uri: str
    path: Path
    size: int
    sha256: str

    def fingerprint(self) -> dict:
        """Where it came from and what it was; not where this machine keeps its copy."""
        d = asdict(self)
        del d["path"]
        return d


def is_url(uri: str) -> bool:
    return "://" in str(uri)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ACMMG_CACHE", Path.home() / ".cache" / "acmmg" / "downloads"))


def _cache_name(uri: str) -> str:
    # Keep the file name (its extension drives format and compression detection) and make
    # it unique per URL.
    name = Path(urlparse(uri).path).name or "download"
    return f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}-{name}"


def fetch(
    uri: str,
    cache_dir: Path | None = None,
    *,
    retries: int | None = None,
    timeout: float = 60.0,
    backoff: float = 0.5,
    session: requests.Session | None = None,
    progress: bool = False,
) -> Source:
    """Return a local, complete copy of ``uri`` with its size and sha256."""
    uri = str(uri)
    if retries is None:
        retries = int(os.environ.get("ACMMG_FETCH_RETRIES", "5"))
    scheme = urlparse(uri).scheme if is_url(uri) else ""
    if not scheme or scheme == "file":
        path = Path(urlparse(uri).path if scheme == "file" else uri)
        if not path.is_file():
            raise FetchError(f"input file not found: {uri}")
        return Source(uri, path, path.stat().st_size, sha256_memo(path))
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / _cache_name(uri)
    if scheme in ("http", "https"):
        _http_download(uri, dest, retries, timeout, backoff, session, progress)
    else:
        _fsspec_download(uri, dest)
    return Source(uri, dest, dest.stat().st_size, sha256_memo(dest))


def _http_download(
    url: str,
    dest: Path,
    retries: int,
    timeout: float,
    backoff: float,
    session: requests.Session | None,
    progress: bool,
) -> None:
    """Stream ``url`` to ``dest`` through ``dest.part``, resuming with Range after a drop.

    A finished download is kept only when its length matches Content-Length; a complete
    file already in the cache is revalidated with a HEAD request (size) and reused.
    """
    sess = session or requests.Session()
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        try:
            head = sess.head(url, timeout=timeout, allow_redirects=True)
            if head.ok and int(head.headers.get("Content-Length", -1)) == dest.stat().st_size:
                return
        except requests.RequestException:
            log.warning("cannot revalidate %s; using the cached copy", url)
            return
    attempt = 0
    total: int | None = None
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with sess.get(url, stream=True, timeout=timeout, headers=headers) as r:
                if r.status_code == 416 and total is not None and have == total:
                    break
                if 400 <= r.status_code < 500 and r.status_code != 429:
                    raise FetchError(f"cannot download {url}: HTTP {r.status_code} {r.reason}")
                if r.status_code >= 500 or r.status_code == 429:
                    raise requests.HTTPError(f"HTTP {r.status_code}")
                if have and r.status_code != 206:
                    have = 0  # server ignored Range: start over
                mode = "ab" if have else "wb"
                length = r.headers.get("Content-Length")
                if length is not None:
                    total = have + int(length)
                bar = _bar(progress, total, have, url)
                with open(part, mode) as f:
                    # Raw bytes: a server's Content-Encoding must not un-gzip a .gz dump.
                    for block in r.raw.stream(CHUNK, decode_content=False):
                        f.write(block)
                        if bar is not None:
                            bar.update(len(block))
                if bar is not None:
                    bar.close()
            size = part.stat().st_size
            if total is None or size == total:
                break
            raise requests.ConnectionError(f"connection closed at byte {size} of {total}")
        except FetchError:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            attempt += 1
            if attempt > retries:
                raise FetchError(f"cannot download {url} after {retries} retries: {e}") from e
            delay = backoff * 2 ** (attempt - 1)
            log.warning("download of %s interrupted (%s); resuming in %.1fs", url, e, delay)
            time.sleep(delay)
    os.replace(part, dest)


def _bar(progress: bool, total: int | None, initial: int, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc[-40:])


def _fsspec_download(uri: str, dest: Path) -> None:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
        info = fs.info(path)
    except FileNotFoundError as e:
        raise FetchError(f"input not found: {uri}") from e
    except ImportError as e:
        raise FetchError(f"no filesystem driver for {uri}: {e}") from e
    if dest.exists() and dest.stat().st_size == info.get("size"):
        return
    tmp = dest.with_name(dest.name + ".part")
    fs.get(path, str(tmp))
    os.replace(tmp, dest)
