"""Where published bytes come from: http(s), any fsspec URL (local paths too), the Hugging Face Hub.

Every source reads small files whole (``read``: bounded, ``None`` when absent) and appends a
file's bytes to a partial file (``fetch``: resumed from what the partial holds, and never past
the size the manifest declares, whatever the source sends). ``locate`` finds the folder of a
category version. Transport failures that ``acmmg.retry`` (the one retry policy of the loader
and the pipeline) deems transient are ``TransientError`` and are retried by ``with_retries``;
anything else (a refused connection, an unknown host, TLS, another 4xx) is final at once.
Messages are one line and name the URL.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from acmmg.errors import DownloadError, UserError
from acmmg.layout import (
    LATEST,
    MANIFEST,
    MAX_LATEST_BYTES,
    MAX_MANIFEST_BYTES,
    VERSIONS,
    check_version,
)
from acmmg.retry import (
    Retry,
    RetryPolicy,
    describe,
    is_transient,
    parse_retry_after,
    transient_status,
)

CHUNK = 1 << 20
STORAGE_OPTIONS_ENV = "ACMMG_STORAGE_OPTIONS"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"


class TransientError(Exception):
    """A failure worth retrying (``acmmg.retry`` decided so, or a body cut short)."""

    transient = True  # read by acmmg.retry.is_transient

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _reason(e: BaseException) -> str:
    """One line for an exception (requests' messages can nest several reprs)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def with_retries(
    op: Callable[[], Any],
    url: str,
    policy: RetryPolicy | None = None,
    progress: Callable[[], int] | None = None,
) -> Any:
    """``op()`` under ``policy`` (default: ``RetryPolicy.from_env()``, the one set of rules).

    A failure that is still transient after the last attempt becomes a ``DownloadError``
    naming ``url``, the attempts and the last reason, in one line.
    """
    policy = policy or RetryPolicy.from_env()
    record: list[Retry] = []
    try:
        return policy.call(op, what=url, record=record, progress=progress)
    except TransientError as e:
        tries = len(record) + 1
        raise DownloadError(
            f"{url}: {_reason(e)} (after {tries} attempt{'s' if tries > 1 else ''})"
        ) from None


def _append(read: Callable[[int], bytes], part: Path, have: int, size: int, on_bytes: Any) -> int:
    """Append at most ``size - have`` bytes from ``read`` to ``part``; return the new length.

    Read errors are transient; write errors (a full disk) propagate as the OSError they are.
    """
    with open(part, "r+b" if have else "wb") as f:
        f.seek(have)
        f.truncate()
        while have < size:
            try:
                block = read(min(CHUNK, size - have))
            except DownloadError:
                raise
            except Exception as e:
                raise TransientError(_reason(e)) from e
            if not block:
                break
            block = block[: size - have]  # a source that ignores the bound is cut off here
            f.write(block)
            have += len(block)
            on_bytes(len(block))
    return have


class HttpSource:
    """``base/<rel>`` over http(s) with requests; one session per thread."""

    def __init__(self, base: str, timeout: float = 60.0, headers: dict | None = None) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._local = threading.local()

    def _session(self) -> Any:
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers.update(self.headers)
        return self._local.session

    def url(self, rel: str) -> str:
        return f"{self.base}/{quote(rel)}"

    def _get(self, rel: str, headers: dict | None = None) -> Any:
        """A streamed GET; transport failures and 429/5xx raise ``TransientError``."""
        import requests

        try:
            r = self._session().get(
                self.url(rel), headers=headers, stream=True, timeout=self.timeout
            )
        except requests.RequestException as e:
            if is_transient(e):
                raise TransientError(describe(e)) from e
            raise DownloadError(f"{self.url(rel)}: {describe(e)}") from None
        if r.status_code >= 500 or r.status_code == 429:
            r.close()
            if not transient_status(r.status_code):
                raise DownloadError(f"{self.url(rel)}: HTTP {r.status_code} {r.reason}")
            wait = parse_retry_after(r.headers.get("Retry-After"))
            raise TransientError(f"HTTP {r.status_code} {r.reason}", retry_after=wait)
        return r

    def read(self, rel: str, limit: int) -> bytes | None:
        def once() -> bytes | None:
            with self._get(rel) as r:
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise DownloadError(f"{self.url(rel)}: HTTP {r.status_code} {r.reason}")
                data = bytearray()
                try:
                    while chunk := r.raw.read(min(CHUNK, limit + 1 - len(data))):
                        data += chunk
                        if len(data) > limit:
                            raise DownloadError(f"{self.url(rel)}: larger than {limit} bytes")
                except DownloadError:
                    raise
                except Exception as e:
                    raise TransientError(_reason(e)) from e
                return bytes(data)

        return with_retries(once, self.url(rel))

    def fetch(self, rel: str, part: Path, size: int, on_bytes: Any) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= size:
            return
        # identity: sizes and ranges are of the stored bytes, never of a compressed stream
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-{size - 1}"
        with self._get(rel, headers) as r:
            if r.status_code == 404:
                raise DownloadError(f"{self.url(rel)}: not found (HTTP 404)")
            if r.status_code == 416:
                raise DownloadError(
                    f"{self.url(rel)}: the server has fewer bytes than the manifest's {size}"
                )
            if have and r.status_code == 200:
                on_bytes(-have)  # the server ignored the Range: start over
                have = 0
            elif r.status_code not in (200, 206):
                raise DownloadError(f"{self.url(rel)}: HTTP {r.status_code} {r.reason}")
            # read1 hands over what has arrived, so the bytes before a dropped connection
            # reach the partial file (iter_content would lose its buffer).
            read = getattr(r.raw, "read1", None) or r.raw.read
            have = _append(read, part, have, size, on_bytes)
        if have < size:
            raise TransientError(f"connection closed after {have} of {size} bytes")

    def locate(self, slug: str, version: str | None) -> Located:
        return _locate_versions(self, slug, version)


class FsspecSource:
    """``root/<rel>`` on any fsspec filesystem (local paths included)."""

    def __init__(self, source: str, storage_options: dict | None) -> None:
        self.source = source
        self.fs, self.root = open_target(source, storage_options)

    def url(self, rel: str) -> str:
        return f"{self.source.rstrip('/')}/{rel}"

    def read(self, rel: str, limit: int) -> bytes | None:
        path = f"{self.root}/{rel}"

        def once() -> bytes | None:
            try:
                with self.fs.open(path, "rb") as f:
                    data = f.read(limit + 1)
            except FileNotFoundError:
                return None
            except (IsADirectoryError, NotADirectoryError, PermissionError) as e:
                raise DownloadError(f"{self.url(rel)}: {_reason(e)}") from None
            except Exception as e:
                raise TransientError(_reason(e)) from e
            if len(data) > limit:
                raise DownloadError(f"{self.url(rel)}: larger than {limit} bytes")
            return data

        return with_retries(once, self.url(rel))

    def fetch(self, rel: str, part: Path, size: int, on_bytes: Any) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= size:
            return
        try:
            src = self.fs.open(f"{self.root}/{rel}", "rb")
        except FileNotFoundError:
            raise DownloadError(f"{self.url(rel)}: not found") from None
        except Exception as e:
            raise TransientError(_reason(e)) from e
        with src:
            if have:
                src.seek(have)
            have = _append(src.read, part, have, size, on_bytes)
        if have < size:
            raise DownloadError(f"{self.url(rel)}: the source has fewer bytes than {size}")

    def locate(self, slug: str, version: str | None) -> Located:
        return _locate_versions(self, slug, version)


class Located(NamedTuple):
    """A category version found on a source: where its files are and its manifest's bytes."""

    source: Any  # reads the version's files by path relative to ``folder``
    folder: str
    version: str | None  # None: the one the manifest states (Hub ``main``)
    manifest: bytes | None  # None: not (completely) published


def _read_manifest(src: Any, folder: str) -> bytes | None:
    return src.read(f"{folder}/{MANIFEST}", MAX_MANIFEST_BYTES)


def _locate_versions(src: Any, slug: str, version: str | None) -> Located:
    """The ``<slug>/versions/<v>/`` + ``<slug>/LATEST`` layout."""
    if version is None:
        raw = src.read(f"{slug}/{LATEST}", MAX_LATEST_BYTES)
        if raw is None:
            raise DownloadError(
                f"{src.url(slug)}: no {slug}/{LATEST}; is {slug!r} published there?"
            )
        version = raw.decode("utf-8", "replace").strip()
    check_version(version)
    folder = f"{slug}/{VERSIONS}/{version}"
    return Located(src, folder, version, _read_manifest(src, folder))


def open_target(target: str, storage_options: dict | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and root path of a local directory or fsspec URL."""
    import fsspec

    opts = storage_options_from_env(storage_options)
    try:
        fs, root = fsspec.core.url_to_fs(target, **opts)
    except (ImportError, ValueError) as e:
        raise UserError(f"cannot open {target}: {e}") from e
    return fs, root.rstrip("/") or root


def storage_options_from_env(explicit: dict | None = None) -> dict:
    """``explicit`` if given, else the JSON in ``$ACMMG_STORAGE_OPTIONS``, else ``{}``."""
    if explicit is not None:
        return dict(explicit)
    raw = os.environ.get(STORAGE_OPTIONS_ENV)
    if not raw:
        return {}
    try:
        opts = json.loads(raw)
    except ValueError as e:
        raise UserError(f"${STORAGE_OPTIONS_ENV} is not valid JSON: {e}") from e
    if not isinstance(opts, dict):
        raise UserError(f"${STORAGE_OPTIONS_ENV} must be a JSON object")
    return opts


def open_source(source: str, storage_options: dict | None = None) -> Any:
    """The source for a publish target: http(s) URL, ``hf://datasets/...``, fsspec URL, path."""
    source = str(source)
    if source.startswith(("http://", "https://")):
        return HttpSource(source)
    if source.startswith("hf:"):
        return HubSource(source)
    return FsspecSource(source, storage_options)


# ----------------------------------------------------------------------------- Hugging Face


def hf_repo(target: str) -> tuple[str, str] | None:
    """``(repo_id, prefix)`` for ``hf://datasets/OWNER/NAME[/PREFIX]`` or ``hf:OWNER/NAME``."""
    if target.startswith("hf://"):
        parts = target[len("hf://") :].strip("/").split("/")
        if len(parts) < 3 or parts[0] != "datasets":
            raise UserError(f"Hugging Face target must be hf://datasets/OWNER/NAME, got {target}")
        return "/".join(parts[1:3]), "/".join(parts[3:])
    if target.startswith("hf:"):
        parts = target[len("hf:") :].strip("/").split("/")
        if len(parts) < 2:
            raise UserError(f"Hugging Face target must be hf:OWNER/NAME, got {target}")
        return "/".join(parts[:2]), "/".join(parts[2:])
    return None


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HF_DEFAULT_ENDPOINT).rstrip("/")


def hf_token() -> str | None:
    """``$HF_TOKEN``, else the token ``hf auth login`` saved (``$HF_HOME/token``)."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token.strip()
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    try:
        return (home / "token").read_text().strip() or None
    except OSError:
        return None


class HubSource:
    """A Hugging Face dataset repo in the Hub layout, read over plain HTTP.

    Layout: ``[PREFIX/]<category>/`` holds the category folder (manifest.json included) on
    ``main``; each published version is a tag named by the version. ``locate`` resolves the
    revision (``main``, or the version's tag) to its commit once and reads every file at that
    commit, so a publish landing meanwhile cannot mix two versions. Repos written in the
    older ``<category>/versions/<v>/`` + ``LATEST`` layout are read too.
    """

    def __init__(self, target: str, endpoint: str | None = None, token: str | None = None):
        self.repo_id, prefix = hf_repo(target)  # type: ignore[misc]
        self.prefix = prefix.strip("/")
        self.endpoint = (endpoint or hf_endpoint()).rstrip("/")
        token = token or hf_token()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api = HttpSource(f"{self.endpoint}/api/datasets/{self.repo_id}", headers=self.headers)

    def url(self, rel: str) -> str:
        return f"hf://datasets/{self.repo_id}/{self._path(rel)}"

    def _path(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def at(self, sha: str) -> HttpSource:
        """Files of the repo at commit ``sha`` (prefix included)."""
        base = f"{self.endpoint}/datasets/{self.repo_id}/resolve/{sha}"
        return HttpSource(f"{base}/{self.prefix}" if self.prefix else base, headers=self.headers)

    def commit_of(self, revision: str) -> str | None:
        raw = self.api.read(f"revision/{revision}", MAX_LATEST_BYTES * 64)
        if raw is None:
            return None
        try:
            sha = json.loads(raw)["sha"]
        except (ValueError, KeyError, TypeError):
            raise DownloadError(
                f"{self.url('')}: unexpected answer for revision {revision}"
            ) from None
        if not isinstance(sha, str) or not sha.isalnum():
            raise DownloadError(f"{self.url('')}: unexpected commit id for revision {revision}")
        return sha

    def locate(self, slug: str, version: str | None) -> Located:
        revision = check_version(version) if version is not None else "main"
        sha = self.commit_of(revision)
        if sha is not None:
            files = self.at(sha)
            raw = _read_manifest(files, slug)
            if raw is not None:
                return Located(files, slug, version, raw)
        main = self.commit_of("main")
        if main is None:
            raise DownloadError(f"{self.url('')}: no such dataset repo (or no access)")
        return _locate_versions(self.at(main), slug, version)  # the older layout
