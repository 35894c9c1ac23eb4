"""Download a published category into a plain folder ``DEST/<slug>/``, verified and resumable.

The source is what ``acmmg publish`` wrote to (layout in ``pipeline.publish.targets``): an
http(s) URL, any fsspec URL (``s3://``, ``hf://datasets/OWNER/NAME``...) or a local path.
Steps: resolve ``<slug>/LATEST`` (or the given version), read that version's manifest, fetch
the files that are not already present and intact, in parallel, each into
``DEST/<slug>/.partial/<sha256>-<path hash>.part`` (resumed with an HTTP Range request or a seek after a
dropped connection or an interrupted run), verify size and sha256, then rename into place.
A mismatch is refused with an error naming the file and both hashes, and the corrupt bytes are
deleted. ``images.tar`` is then extracted safely (members that are absolute, contain '..',
are links or devices refuse the whole archive before anything is written) and kept beside
``images/`` (the ACMMG card's snippet extracts it only when ``images/`` is missing).
``manifest.json`` is written last, so a folder with a manifest is complete. A second run with
everything present downloads nothing. Files of an older version that the new manifest no
longer lists are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import UserError
from pipeline.io import atomic_path, read_json, sha256_file
from pipeline.publish.targets import (
    LATEST,
    MANIFEST,
    VERSIONS,
    check_slug,
    check_version,
    open_target,
    parse_manifest,
)

log = logging.getLogger(__name__)

CHUNK = 1 << 20
PARTIAL_DIR = ".partial"
IMAGES_TAR = "images.tar"
# Records which images.tar (by sha256) the extracted tree came from, so reruns skip it.
EXTRACTED_STAMP = ".images.tar.extracted"


class DownloadError(UserError):
    """A file could not be fetched or failed verification."""


class UnsafeArchiveError(DownloadError):
    """A tar member would land outside the folder or is not a plain file or directory."""


# ----------------------------------------------------------------------------- sources


class _HttpSource:
    """``base/<rel>`` over http(s) with requests; one session per thread."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> Any:
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def url(self, rel: str) -> str:
        from urllib.parse import quote

        return f"{self.base}/{quote(rel)}"

    def read(self, rel: str, attempts: int = 3) -> bytes | None:
        import requests

        for attempt in range(attempts):
            try:
                r = self._session().get(self.url(rel), timeout=self.timeout)
                if r.status_code == 404:
                    return None
                r.raise_for_status()
                return r.content
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt == attempts - 1:
                    raise DownloadError(f"{self.url(rel)}: {e}") from e
                time.sleep(0.2 * 2**attempt)
        return None

    def fetch(self, rel: str, part: Path, size: int, on_bytes: Any) -> None:
        have = part.stat().st_size if part.exists() else 0
        # identity: sizes and ranges are of the stored bytes, never of a compressed stream
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        with self._session().get(
            self.url(rel), headers=headers, stream=True, timeout=self.timeout
        ) as r:
            if have and r.status_code == 200:
                have = 0  # the server ignored the Range: start over
                on_bytes(-part.stat().st_size)
            elif r.status_code not in (200, 206):
                r.raise_for_status()
                raise DownloadError(f"{self.url(rel)}: unexpected HTTP {r.status_code}")
            with open(part, "r+b" if have else "wb") as f:
                f.seek(have)
                f.truncate()
                # read1 hands over what has arrived, so the bytes before a dropped
                # connection reach the partial file (iter_content would lose its buffer).
                read = getattr(r.raw, "read1", None) or r.raw.read
                while block := read(CHUNK):
                    f.write(block)
                    on_bytes(len(block))


class _FsspecSource:
    """``root/<rel>`` on any fsspec filesystem (local paths included)."""

    def __init__(self, source: str, storage_options: dict | None) -> None:
        self.fs, self.root = open_target(source, storage_options)

    def read(self, rel: str) -> bytes | None:
        path = f"{self.root}/{rel}"
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def fetch(self, rel: str, part: Path, size: int, on_bytes: Any) -> None:
        have = part.stat().st_size if part.exists() else 0
        with self.fs.open(f"{self.root}/{rel}", "rb") as src, open(part, "ab") as f:
            if have:
                src.seek(have)
            while block := src.read(CHUNK):
                f.write(block)
                on_bytes(len(block))


def _open_source(source: str, storage_options: dict | None) -> Any:
    if source.startswith(("http://", "https://")):
        return _HttpSource(source)
    if source.startswith("hf:") and not source.startswith("hf://"):
        source = "hf://datasets/" + source[len("hf:") :]  # the publish shorthand
    return _FsspecSource(source, storage_options)


def partial_path(out: Path, rel: str, sha256: str) -> Path:
    """Where the download of ``rel`` accumulates: named by content and path (two files with
    equal bytes never share one), so a rerun resumes it and another version never mixes in."""
    tag = hashlib.sha256(rel.encode()).hexdigest()[:12]
    return out / PARTIAL_DIR / f"{sha256}-{tag}.part"


# ----------------------------------------------------------------------------- download


def _intact(path: Path, meta: dict) -> bool:
    return (
        path.is_file()
        and path.stat().st_size == meta["size"]
        and sha256_file(path) == meta["sha256"]
    )


def _resolve_version(src: Any, slug: str, source: str, version: str | None) -> str:
    if version is not None:
        return check_version(version)
    raw = src.read(f"{slug}/{LATEST}")
    if raw is None:
        raise DownloadError(f"{source}: no {slug}/{LATEST}; is {slug!r} published there?")
    return check_version(raw.decode("utf-8", "replace").strip())


def download_category(
    slug: str,
    source: str,
    dest: Path,
    version: str | None = None,
    workers: int = 8,
    progress: bool = False,
    storage_options: dict | None = None,
    retries: int = 5,
) -> Path:
    """Download ``slug`` from ``source`` into ``dest/slug`` and return that folder.

    Raises ``DownloadError`` (a ``UserError``) naming the file on a size or sha256 mismatch
    (the bad bytes are deleted) or when a file cannot be fetched after ``retries`` attempts,
    and ``UnsafeArchiveError`` for an images.tar that would escape the folder.
    """
    check_slug(slug)
    src = _open_source(str(source), storage_options)
    version = _resolve_version(src, slug, str(source), version)
    vdir = f"{slug}/{VERSIONS}/{version}"
    raw_manifest = src.read(f"{vdir}/{MANIFEST}")
    if raw_manifest is None:
        raise DownloadError(f"{source}: version {version} of {slug} is not (completely) published")
    manifest = parse_manifest(raw_manifest, f"{source} {vdir}")
    if "version" in manifest and str(manifest["version"]) != version:
        raise DownloadError(
            f"{source}: {vdir}/{MANIFEST} says version {manifest['version']}, not {version}"
        )
    files: dict[str, dict] = manifest["files"]

    out = Path(dest) / slug
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL_DIR
    mpath = out / MANIFEST
    old_files = _old_files(mpath)
    if mpath.exists() and mpath.read_bytes() != raw_manifest:
        mpath.unlink()  # the folder is in transition: no manifest until it is complete again
    # Verify what is present in parallel too (hashing releases the GIL).
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        present = dict(
            zip(files, pool.map(lambda r: _intact(out / r, files[r]), files), strict=True)
        )
    todo = sorted(rel for rel, ok in present.items() if not ok)
    for rel in todo:  # stale or corrupt local copies go now, whatever the download's outcome
        if (out / rel).is_file():
            (out / rel).unlink()
    log.info("%s %s: %d files, %d to download", slug, version, len(files), len(todo))

    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=sum(files[r]["size"] for r in todo), unit="B", unit_scale=True, desc=slug)
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        if bar is not None:
            with lock:
                bar.update(n)

    def one(rel: str) -> str | None:
        meta = files[rel]
        part = partial_path(out, rel, meta["sha256"])
        if part.exists():
            on_bytes(part.stat().st_size)
        last: Exception | str | None = None
        for attempt in range(retries):
            if part.exists() and part.stat().st_size >= meta["size"]:
                break
            if attempt:
                log.warning("%s: attempt %d failed (%s); resuming", rel, attempt, last)
                time.sleep(min(2.0, 0.2 * 2**attempt))
            try:
                src.fetch(f"{vdir}/{rel}", part, meta["size"], on_bytes)
                last = "connection closed early"  # only read if the file is still short
            except DownloadError:
                raise
            except Exception as e:  # dropped connection, timeout...: resume from the partial
                last = e
        else:
            if not (part.exists() and part.stat().st_size >= meta["size"]):
                return f"{rel}: download failed after {retries} attempts: {last}"
        size = part.stat().st_size if part.exists() else 0
        digest = sha256_file(part) if size == meta["size"] else None
        if digest != meta["sha256"]:
            part.unlink(missing_ok=True)  # keep nothing corrupt
            if digest is None:
                return f"{rel}: size {size} differs from the manifest's {meta['size']} (deleted)"
            return (
                f"{rel}: sha256 mismatch: manifest says {meta['sha256']}, downloaded file has "
                f"{digest} (deleted)"
            )
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        return None

    if todo:
        partial.mkdir(exist_ok=True)
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                errors = [e for e in pool.map(one, todo) if e]
        finally:
            if bar is not None:
                bar.close()
        if errors:
            raise DownloadError(
                f"{slug} {version} from {source}: {len(errors)} file(s) refused:\n  "
                + "\n  ".join(errors)
            )
    if partial.exists() and not any(partial.iterdir()):
        partial.rmdir()

    if IMAGES_TAR in files:
        protected = {PurePosixPath(rel).parts[0] for rel in files}
        extract_images(out / IMAGES_TAR, out, files[IMAGES_TAR]["sha256"], protected)
    _remove_stale(out, old_files, files)
    if not (mpath.is_file() and mpath.read_bytes() == raw_manifest):
        with atomic_path(mpath) as tmp:
            tmp.write_bytes(raw_manifest)  # last: a folder with a manifest is complete
            tmp.chmod(0o644)
    return out


def _old_files(mpath: Path) -> dict:
    """The files listed by the manifest of an earlier download into the same folder."""
    try:
        files = read_json(mpath).get("files", {}) if mpath.is_file() else {}
    except (ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def _remove_stale(out: Path, old_files: dict, files: dict) -> None:
    """Delete files an earlier version listed that this manifest no longer has."""
    for rel in old_files:
        if rel not in files and rel != MANIFEST:
            p = out / PurePosixPath(rel)
            if p.is_file() and out.resolve() in p.resolve().parents:
                p.unlink()


# ----------------------------------------------------------------------------- tar


def check_tar_members(tar: tarfile.TarFile, name: str) -> list[tarfile.TarInfo]:
    """Every member, or ``UnsafeArchiveError`` naming the first that could escape."""
    members = tar.getmembers()
    for m in members:
        p = m.name
        why = None
        if p.startswith(("/", "\\")) or (len(p) > 1 and p[0].isalpha() and p[1] == ":"):
            why = "absolute path"
        elif ".." in PurePosixPath(p.replace("\\", "/")).parts:
            why = "'..' in path"
        elif m.issym() or m.islnk():
            why = f"link to {m.linkname!r}"
        elif m.isdev():
            why = "device or fifo"
        elif not (m.isfile() or m.isdir()):
            why = "not a regular file or directory"
        if why:
            raise UnsafeArchiveError(f"{name}: refusing to extract member {p!r}: {why}")
    return members


def extract_images(
    tar_path: Path, out: Path, sha256: str | None = None, protected: set[str] | None = None
) -> None:
    """Extract ``tar_path`` into ``out`` safely; skip if this archive was extracted already.

    All members are checked before anything is written; extraction goes to a temporary
    directory inside ``out`` (Python's ``data`` filter as a second guard where available) and
    its top-level entries are then renamed into place. Top-level names in ``protected`` (the
    published files) are refused, so the archive cannot replace verified files. An unsafe
    archive is deleted so the card's ``tar.extractall`` cannot be run on it later.
    """
    protected = set(protected or ()) | {MANIFEST, PARTIAL_DIR, EXTRACTED_STAMP}
    stamp = out / EXTRACTED_STAMP
    sha256 = sha256 or sha256_file(tar_path)
    try:
        with tarfile.open(tar_path, "r") as tar:
            members = check_tar_members(tar, tar_path.name)
            tops = sorted({PurePosixPath(m.name).parts[0] for m in members if m.name.strip("/.")})
            clash = [t for t in tops if t in protected or t.startswith(".extract.")]
            if clash:
                raise UnsafeArchiveError(
                    f"{tar_path.name}: refusing to extract {clash[0]!r}: it would replace a "
                    "published file of the folder"
                )
            if (
                stamp.exists()
                and stamp.read_text().strip() == sha256
                and all((out / t).exists() for t in tops)
            ):
                return
            tmp = out / f".extract.{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # Python < 3.11.4: the explicit checks above are the guard
                    tar.extractall(tmp, members=members)
                for t in tops:
                    dest = out / t
                    if dest.is_dir() and not dest.is_symlink():
                        shutil.rmtree(dest)
                    elif dest.exists() or dest.is_symlink():
                        dest.unlink()
                    os.replace(tmp / t, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except UnsafeArchiveError:
        tar_path.unlink(missing_ok=True)
        raise
    except tarfile.TarError as e:
        raise DownloadError(f"{tar_path}: not a readable tar archive ({e})") from e
    stamp.write_text(sha256 + "\n")
