"""Download a published category into a plain folder ``DEST/<slug>/``, verified and resumable.

The source is what ``acmmg publish`` wrote to (layout in ``acmmg.layout``; sources in
``acmmg.transport``): an http(s) URL, a Hugging Face dataset repo (``hf://datasets/OWNER/NAME``),
any fsspec URL (``s3://``...) or a local path. Steps: resolve the version (``LATEST``, the
Hub's ``main``, or the one asked for), read its manifest and check it strictly (the version
is recomputed from the file hashes and must match), then, holding a lock on the destination,
fetch the selected files that are not already present and intact, in parallel, each into
``DEST/<slug>/.partial/<sha256>-<path hash>.part`` (resumed with an HTTP Range request or a
seek after a dropped connection or an interrupted run; never more bytes than the manifest
declares), verify size and sha256, and rename into place. A mismatch is refused with an error
naming the file and both hashes, and the corrupt bytes are deleted. ``images.tar`` is then
extracted safely (plain tar only; members that are absolute, contain '..', are links, devices
or sparse, or add up to more bytes than the archive holds, refuse the whole archive before
anything is written) and kept beside ``images/``.

``manifest.json`` is written last and only when every file it lists is present: a folder with
``manifest.json`` is complete. A partial download (``include`` / ``exclude``) writes the
manifest as ``.partial-manifest.json`` instead, so a later full download sees an incomplete
folder and fetches the rest. A second run with everything present downloads nothing; files
of an older version that the new manifest no longer lists are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from acmmg.errors import DownloadError, UnsafeArchiveError
from acmmg.layout import IMAGES_TAR, MANIFEST, check_slug, parse_manifest, select_files
from acmmg.retry import RetryPolicy
from acmmg.signing import MAX_SIGNATURE_BYTES, SIGNATURE, pinned_key, verify_manifest
from acmmg.transport import open_source, with_retries

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
# The manifest of a folder that holds only some of its files (a partial download).
PARTIAL_MANIFEST = ".partial-manifest.json"
# Records which images.tar (by sha256) the extracted tree came from, so reruns skip it.
EXTRACTED_STAMP = ".images.tar.extracted"
# First bytes of the compressed formats tarfile's mode "r" would silently expand.
_COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}

__all__ = [
    "DownloadError",
    "UnsafeArchiveError",
    "download_category",
    "extract_images",
    "partial_path",
    "PARTIAL_DIR",
    "PARTIAL_MANIFEST",
]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def partial_path(out: Path, rel: str, sha256: str) -> Path:
    """Where the download of ``rel`` accumulates: named by content and path (two files with
    equal bytes never share one), so a rerun resumes it and another version never mixes in."""
    tag = hashlib.sha256(rel.encode()).hexdigest()[:12]
    return out / PARTIAL_DIR / f"{sha256}-{tag}.part"


def _intact(path: Path, meta: dict) -> bool:
    return (
        path.is_file()
        and path.stat().st_size == meta["size"]
        and sha256_file(path) == meta["sha256"]
    )


def _write_atomic(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _lock(dest: Path, slug: str) -> Any:
    """One download into ``dest/slug`` at a time, across processes (others wait their turn,
    then find the files present and download nothing)."""
    from filelock import FileLock

    return FileLock(str(dest / f".{slug}.download.lock"))


def download_category(
    slug: str,
    source: str,
    dest: str | os.PathLike,
    version: str | None = None,
    workers: int = 8,
    progress: bool = False,
    storage_options: dict | None = None,
    retries: int | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    public_key: str | os.PathLike | None = None,
) -> Path:
    """Download ``slug`` from ``source`` into ``dest/slug`` and return that folder.

    ``include`` / ``exclude``: glob patterns over the manifest's paths for a partial download.
    ``public_key`` (or ``$ACMMG_PUBLIC_KEY``): a pinned Ed25519 public key (PEM path or text);
    the manifest's detached signature must then verify (``acmmg.signing``).
    Raises ``DownloadError`` (a ``UserError``) naming the file on a size or sha256 mismatch (the
    bad bytes are deleted), when a file cannot be fetched within the retry policy
    (``acmmg.retry``; ``retries``: tries after the first, else ``$ACMMG_FETCH_RETRIES``), or when
    the destination cannot be written (a full disk); ``ManifestError`` for a manifest that
    breaks the schema or does not match its version; ``UnsafeArchiveError`` for an
    images.tar that would escape the folder or expand past its size.
    """
    check_slug(slug)
    policy = RetryPolicy.from_env(**({} if retries is None else {"attempts": 1 + retries}))
    src = open_source(str(source), storage_options)
    loc = src.locate(slug, version)
    if loc.manifest is None:
        raise DownloadError(
            f"{source}: version {loc.version or 'main'} of {slug} is not (completely) published"
        )
    where = f"{source} {loc.folder}"
    manifest = parse_manifest(loc.manifest, where, version=loc.version)
    key = pinned_key(public_key)
    if key is not None:
        sig = loc.source.read(f"{loc.folder}/{SIGNATURE}", MAX_SIGNATURE_BYTES)
        verify_manifest(loc.manifest, sig, key, where)
    selected = select_files(manifest["files"], include, exclude)
    dest = Path(dest)
    out = dest / slug
    try:
        out.mkdir(parents=True, exist_ok=True)
        with _lock(dest, slug):
            _sync(loc, manifest, selected, out, workers, progress, policy)
    except OSError as e:  # a full disk, a read-only destination: one line, state kept clean
        raise DownloadError(f"cannot write {out}: {e.strerror or e}") from None
    return out


def _sync(
    loc: Any,
    manifest: dict,
    selected: list[str],
    out: Path,
    workers: int,
    progress: bool,
    policy: RetryPolicy,
) -> None:
    raw = loc.manifest
    files: dict[str, dict] = manifest["files"]
    version = manifest.get("version", "")
    mpath, ppath = out / MANIFEST, out / PARTIAL_MANIFEST
    old_files = _old_files(mpath) or _old_files(ppath)
    for p in (mpath, ppath):
        if p.exists() and p.read_bytes() != raw:
            p.unlink()  # the folder is in transition: no manifest until it is complete again
    for rel in files:
        _clear_way(out, rel)
    # Verify what is present, in parallel (hashing releases the GIL).
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        present = dict(
            zip(files, pool.map(lambda r: _intact(out / r, files[r]), files), strict=True)
        )
    if not all(present.values()):
        mpath.unlink(missing_ok=True)  # not complete (any more): no manifest.json meanwhile
    for rel, ok in present.items():  # stale or corrupt local copies go, whatever happens next
        if not ok and (out / rel).is_file():
            (out / rel).unlink()
    todo = [rel for rel in selected if not present[rel]]
    log.info(
        "%s: %d files, %d selected, %d to download", out.name, len(files), len(selected), len(todo)
    )
    if todo:
        _fetch_all(loc, files, todo, out, workers, progress, policy)
        present.update(dict.fromkeys(todo, True))

    if present.get(IMAGES_TAR):
        protected = {PurePosixPath(rel).parts[0] for rel in files} | {PARTIAL_MANIFEST}
        extract_images(out / IMAGES_TAR, out, files[IMAGES_TAR]["sha256"], protected)
    _remove_stale(out, old_files, files)
    complete = all(present.values())
    if complete:
        shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
        ppath.unlink(missing_ok=True)
        if not mpath.is_file():
            _write_atomic(mpath, raw)  # last: a folder with manifest.json is complete
    elif not ppath.is_file():
        _write_atomic(ppath, raw)
    log.info("%s %s: %s", out.name, version, "complete" if complete else "partial")


def _fetch_all(
    loc: Any,
    files: dict,
    todo: list[str],
    out: Path,
    workers: int,
    progress: bool,
    policy: RetryPolicy,
) -> None:
    src, folder = loc.source, loc.folder
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(files[r]["size"] for r in todo)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=out.name)
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

        def fetch() -> None:
            if meta["size"] == 0:
                part.write_bytes(b"")  # nothing to fetch
            else:
                src.fetch(f"{folder}/{rel}", part, meta["size"], on_bytes)

        def held() -> int:
            return part.stat().st_size if part.exists() else 0

        try:
            # Each retry resumes from the partial file; progress restarts the deadline.
            with_retries(fetch, src.url(f"{folder}/{rel}"), policy, progress=held)
        except DownloadError as e:
            part.unlink(missing_ok=True)
            return f"{rel}: {e}"
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

    (out / PARTIAL_DIR).mkdir(exist_ok=True)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            errors = [e for e in pool.map(one, todo) if e]
    finally:
        if bar is not None:
            bar.close()
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DownloadError(f"{len(errors)} file(s) refused: {errors[0]}{more}")


def _clear_way(out: Path, rel: str) -> None:
    """Remove what an older version left in the way of ``rel``: a file where this version
    has a directory, or a directory where it has a file."""
    parts = PurePosixPath(rel).parts
    for i in range(1, len(parts)):
        p = out.joinpath(*parts[:i])
        if p.is_symlink() or p.is_file():
            p.unlink()
            return
        if not p.exists():
            return
    p = out / rel
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)


def _old_files(mpath: Path) -> dict:
    """The files listed by the manifest of an earlier download into the same folder."""
    try:
        files = json.loads(mpath.read_bytes()).get("files", {}) if mpath.is_file() else {}
    except (ValueError, AttributeError, RecursionError):
        return {}
    return files if isinstance(files, dict) else {}


def _remove_stale(out: Path, old_files: dict, files: dict) -> None:
    """Delete files an earlier version listed that this manifest no longer has."""
    root = out.resolve()
    for rel in old_files:
        if rel not in files and rel != MANIFEST and isinstance(rel, str):
            p = out / PurePosixPath(rel)
            if p.is_file() and root in p.resolve().parents:
                p.unlink()


# ----------------------------------------------------------------------------- tar


def check_tar_members(
    tar: tarfile.TarFile, name: str, max_bytes: int | None = None
) -> list[tarfile.TarInfo]:
    """Every member, or ``UnsafeArchiveError`` naming the first that could escape (or the
    total, when the members claim more than ``max_bytes``)."""
    members = tar.getmembers()
    total = 0
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
        elif m.issparse():
            why = "sparse file"
        elif not (m.isfile() or m.isdir()):
            why = "not a regular file or directory"
        if why:
            raise UnsafeArchiveError(f"{name}: refusing to extract member {p!r}: {why}")
        total += m.size if m.isfile() else 0
    if max_bytes is not None and total > max_bytes:
        raise UnsafeArchiveError(
            f"{name}: members add up to {total} bytes, more than the archive's {max_bytes}"
        )
    return members


def _compression(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    return next((kind for magic, kind in _COMPRESSED_MAGIC.items() if head.startswith(magic)), None)


def extract_images(
    tar_path: Path, out: Path, sha256: str | None = None, protected: set[str] | None = None
) -> None:
    """Extract ``tar_path`` into ``out`` safely; skip if this archive was extracted already.

    The archive must be a plain (uncompressed) tar: it is opened with mode ``"r:"`` and a
    compressed one is refused, so a small file cannot expand to an unbounded tree; the
    members together may not exceed the archive's own size. All members are checked before
    anything is written; extraction goes to a temporary directory inside ``out`` (Python's
    ``data`` filter as a second guard where available) and its top-level entries are then
    renamed into place. Top-level names in ``protected`` (the published files) are refused, so
    the archive cannot replace verified files. An unsafe archive is deleted so the card's
    ``tar.extractall`` cannot be run on it later.
    """
    protected = set(protected or ()) | {MANIFEST, PARTIAL_DIR, EXTRACTED_STAMP, PARTIAL_MANIFEST}
    stamp = out / EXTRACTED_STAMP
    sha256 = sha256 or sha256_file(tar_path)
    try:
        kind = _compression(tar_path)
        if kind:
            raise UnsafeArchiveError(
                f"{tar_path.name}: is {kind}-compressed; refusing (images.tar must be a plain tar)"
            )
        with tarfile.open(tar_path, "r:") as tar:
            members = check_tar_members(tar, tar_path.name, tar_path.stat().st_size)
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
        raise DownloadError(f"{tar_path}: not a readable tar archive ({e})") from None
    stamp.write_text(sha256 + "\n")
