"""Resolve an input (local path, http(s) URL or fsspec URL) to a local file with a fingerprint.

Remote files are streamed into a cache directory. An http(s) source may have mirrors, tried
in turn (the registry's, see ``pipeline.categories.mirrors_for``); the URL that served the
copy is part of its fingerprint. Downloads follow the one retry policy (``acmmg.retry``),
resume with a Range request after a dropped connection, and are checked before they are
kept: the announced length, a checksum the server gives (Digest / Repr-Digest, Content-MD5,
a sha256 or md5 ETag), and for a body whose end nothing announced (close-delimited), a
last line that is whole. The sha256 of every input is recorded so that later stages (and
the stage cache keys) can tell whether an input changed.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3

from acmmg.retry import IncompleteBody, RetryPolicy, check_status, describe
from pipeline.errors import UserError
from pipeline.http import alias, make_session
from pipeline.io import read_json, sha256_memo, write_json
from pipeline.progress import Progress
from pipeline.sources.detect import last_line_complete

log = logging.getLogger(__name__)

CHUNK = 1 << 16  # small, so a dropped connection loses little
CONNECT_TIMEOUT = 15.0


class FetchError(UserError):
    """An input could not be fetched; the message names the URL and why."""


class TruncatedDownload(FetchError):
    """A body ended without a way to know it was whole, and its last line is cut."""

    transient = True  # another try (resuming with Range) may get the rest


@dataclass(frozen=True)
class Source:
    """A local copy of an input and where it came from."""

    uri: str
    path: Path
    size: int
    sha256: str
    served_by: str | None = None  # the URL (the source's or a mirror's) the copy came from

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


def local_input(uri: str) -> Path:
    """The path of a local input, or a FetchError saying what is wrong with it."""
    path = Path(urlparse(uri).path if uri.startswith("file://") else uri)
    if path.is_dir():
        raise FetchError(f"{uri} is a directory, not a file (name the dump file inside it)")
    if not path.exists():
        raise FetchError(f"input file not found: {uri}")
    if not path.is_file():
        raise FetchError(f"{uri} is not a regular file")
    if not os.access(path, os.R_OK):
        raise FetchError(f"cannot read {uri}: permission denied")
    return path


def fetch(
    uri: str,
    cache_dir: Path | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    policy: RetryPolicy | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float = 60.0,
    session: requests.Session | None = None,
    progress: bool = False,
    aliases: Sequence[str] = (),
) -> Source:
    """A local, complete copy of ``uri`` with its size and sha256.

    ``mirrors`` are other URLs of the same file, tried in order when ``uri`` cannot be
    fetched; by default those the category registry lists for ``uri``. ``retries`` /
    ``backoff`` adjust the default retry policy (else ``ACMMG_FETCH_RETRIES``). ``aliases``
    say where to connect for a URL (``pipeline.http.alias``); the records keep the URL."""
    uri = str(uri)
    scheme = urlparse(uri).scheme if is_url(uri) else ""
    if not scheme or scheme == "file":
        path = local_input(uri)
        return Source(uri, path, path.stat().st_size, sha256_memo(path))
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    if scheme not in ("http", "https"):
        dest = cache_dir / _cache_name(uri)
        _fsspec_download(uri, dest)
        return Source(uri, dest, dest.stat().st_size, sha256_memo(dest), served_by=uri)
    if mirrors is None:
        from pipeline.categories import mirrors_for

        mirrors = mirrors_for(uri)
    candidates = [uri, *(m for m in mirrors if m != uri)]
    overrides = {k: v for k, v in (("attempts", retries), ("backoff", backoff)) if v is not None}
    if "attempts" in overrides:
        overrides["attempts"] += 1  # retries after the first try
    policy = policy or RetryPolicy.from_env(**overrides)
    sess = session or make_session()
    # A complete copy from any of them is reused (revalidated where it came from).
    for url in candidates:
        dest = cache_dir / _cache_name(url)
        if dest.exists() and _still_current(alias(url, aliases), dest, sess, timeout):
            return Source(uri, dest, dest.stat().st_size, sha256_memo(dest), served_by=url)
    errors: list[FetchError] = []
    for i, url in enumerate(candidates):
        dest = cache_dir / _cache_name(url)
        try:
            _http_download(alias(url, aliases), dest, policy, timeout, sess, progress)
        except FetchError as e:
            errors.append(e)
            if i + 1 < len(candidates):
                log.warning("%s; trying mirror %s", e, candidates[i + 1])
            continue
        return Source(uri, dest, dest.stat().st_size, sha256_memo(dest), served_by=url)
    if len(errors) == 1:
        raise errors[0]
    raise FetchError(f"no source of {uri} could be fetched: " + "; ".join(map(str, errors)))


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".http.json")


def _validators(headers) -> dict:
    return {k: headers[k] for k in ("ETag", "Last-Modified") if k in headers}


def _still_current(url: str, dest: Path, sess: requests.Session, timeout: float) -> bool:
    """Whether a cached copy still matches the server (HEAD: size, then ETag/Last-Modified);
    an unreachable server keeps the copy."""
    try:
        head = sess.head(url, timeout=(CONNECT_TIMEOUT, timeout), allow_redirects=True)
    except requests.RequestException as e:
        log.warning("cannot revalidate %s (%s); using the cached copy", url, describe(e))
        return True
    if not head.ok:
        log.warning("cannot revalidate %s (HTTP %s); using the cached copy", url, head.status_code)
        return True
    if int(head.headers.get("Content-Length", -1)) != dest.stat().st_size:
        return False
    saved = read_json(_meta_path(dest)) if _meta_path(dest).exists() else {}
    now = _validators(head.headers)
    return all(now.get(k) == v for k, v in saved.items() if k in now)


# Failures of the transfer itself; anything else (a full disk...) is not the source's fault.
_TRANSFER_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    IncompleteBody,
)


def _http_download(
    url: str,
    dest: Path,
    policy: RetryPolicy,
    timeout: float,
    sess: requests.Session,
    progress: bool,
) -> None:
    """Stream ``url`` to ``dest`` through ``dest.part``, resuming with Range after a drop,
    under ``policy``; ``dest`` appears only once the copy is checked complete."""
    part = dest.with_name(dest.name + ".part")
    state: dict = {"total": None, "headers": {}, "partial": False, "history": []}

    def attempt() -> None:
        have = part.stat().st_size if part.exists() else 0
        # identity: sizes and ranges are of the stored bytes, never of a compressed stream
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            v = _validators(state["headers"])
            if_range = v.get("Last-Modified") or v.get("ETag", "W/")
            if not if_range.startswith("W/"):
                headers["If-Range"] = if_range  # changed since: the server sends it all
        with sess.get(url, stream=True, timeout=(CONNECT_TIMEOUT, timeout), headers=headers) as r:
            if r.status_code == 416 and have and _range_total(r) == have:
                return  # the partial copy was complete already
            check_status(r, url)
            if have and r.status_code != 206:
                have = 0  # the server ignored the Range: start over
            state.update(
                headers=r.headers,
                partial=bool(have),
                history=[h.headers for h in r.history],
                total=_total(r, have),
            )
            with open(part, "ab" if have else "wb") as f:
                bar = _bar(progress, state["total"], have, url)
                # Raw bytes: a server's Content-Encoding must not un-gzip a .gz dump.
                for block in r.raw.stream(CHUNK, decode_content=False):
                    f.write(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
        size = part.stat().st_size
        if state["total"] is not None and size != state["total"]:
            raise IncompleteBody(f"connection closed at byte {size} of {state['total']}")
        if state["total"] is None and not last_line_complete(part):
            # Close-delimited: the connection's end was the only end, and the text stops
            # in the middle of a line.
            raise TruncatedDownload(
                f"{url}: the download ended after {size} bytes in the middle of a line and "
                "the server gave no length: the file looks truncated"
            )

    try:
        # A try that got further restarts the deadline's clock: a long dump that drops late
        # is resumed (the attempts stay bounded).
        policy.call(attempt, what=url, progress=lambda: part.stat().st_size if part.exists() else 0)
    except FetchError:
        raise
    except _TRANSFER_ERRORS as e:
        raise FetchError(f"cannot download {url}: {describe(e)}") from e
    os.replace(part, dest)
    try:
        _verify(url, dest, expected_digests(state["headers"], state["history"], state["partial"]))
    except FetchError:
        dest.unlink(missing_ok=True)
        raise
    write_json(_meta_path(dest), _validators(state["headers"]))


def _range_total(r: requests.Response) -> int | None:
    m = re.match(r"bytes (?:\d+-\d+|\*)/(\d+)", r.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _total(r: requests.Response, have: int) -> int | None:
    """The whole file's length, from Content-Range (206) or Content-Length; None when the
    body is close-delimited or chunked without a length."""
    if r.status_code == 206 and _range_total(r) is not None:
        return _range_total(r)
    length = r.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


_HEX = re.compile(r'^"?([0-9a-fA-F]{32}|[0-9a-fA-F]{64})"?$')


def expected_digests(headers, history: Sequence = (), partial: bool = False) -> dict[str, str]:
    """Checksums of the whole file that response headers state, as {algorithm: hex}:
    RFC 9530 Repr-Digest / RFC 3230 Digest (sha-256, md5), Content-MD5 (of a whole body
    only), and a strong ETag (or the Hugging Face Hub's X-Linked-Etag on a redirect) of 64
    hex digits (sha256) or 32 (md5, as S3 and GCS give for single-part objects)."""
    out: dict[str, str] = {}

    def put(algo: str, b64: str) -> None:
        try:
            out.setdefault(algo, base64.b64decode(b64.strip().strip(":"), validate=True).hex())
        except ValueError:
            pass

    for name in ("Repr-Digest", "Digest"):
        for item in headers.get(name, "").split(","):
            algo, _, value = item.strip().partition("=")
            algo = algo.lower().replace("-", "")
            if algo in ("sha256", "md5") and value:
                put(algo, value)
    if headers.get("Content-MD5") and not partial:
        put("md5", headers["Content-MD5"])
    for h in [headers, *history]:
        for name in ("X-Linked-Etag", "ETag"):
            m = _HEX.match(h.get(name, "").strip())
            if m:
                out.setdefault("sha256" if len(m.group(1)) == 64 else "md5", m.group(1).lower())
    return out


def _verify(url: str, dest: Path, digests: dict[str, str]) -> None:
    """A FetchError when the copy does not match the checksum the server gave (sha256 when
    it gave one, else md5)."""
    algo = "sha256" if "sha256" in digests else "md5" if "md5" in digests else None
    if algo is None:
        return
    want = digests[algo]
    got = sha256_memo(dest) if algo == "sha256" else _md5(dest)
    if got != want:
        raise FetchError(
            f"{url}: the downloaded file does not match the server's {algo} "
            f"({want[:16]}..., got {got[:16]}...); the copy was deleted"
        )


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _bar(progress: bool, total: int | None, initial: int, desc: str):
    if progress:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc[-40:])
    # In a log: a line every 10 s or 5 % (bytes; the remaining ones when resuming).
    return Progress(None if total is None else total - initial, f"download {desc}", "B")


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
