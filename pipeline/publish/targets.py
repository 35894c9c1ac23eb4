"""Publish an assembled category folder to a target, atomically and versioned.

Layout on every target (local directory, any fsspec URL, Hugging Face dataset repo)::

    <target>/<category>/versions/<version>/...   the category folder, manifest.json included
    <target>/<category>/LATEST                   one line: the version readers should use

Readers (``acmmg.download``) resolve ``LATEST``, then read that version's manifest, then
the files. The writer orders its steps so a reader never sees a half-written version: every
data file first, ``manifest.json`` last, then ``LATEST`` replaced in one step (temp file +
rename on a local directory; a single PUT on an object store, which is atomic). A version is
immutable and named by its content (``acmmg.layout.derive_version``): publishing the same
version again uploads nothing; a manifest whose version is not its content hash is refused.
An interrupted publish is resumed: files already in the version directory are kept only when
their sha256 matches the manifest (else uploaded again); on a local target, the temp files
and manifest-less version folders that killed publishes left are removed (a lock keeps two
publishes of one category apart there).

Targets:
- a local directory path or ``file://`` URL;
- any fsspec URL (``s3://bucket/prefix``, ``gcs://...``); options for the filesystem (for
  example ``{"endpoint_url": "http://127.0.0.1:9000"}`` for an S3-compatible server) come from
  ``storage_options`` or the ``ACMMG_STORAGE_OPTIONS`` environment variable (JSON);
- ``hf://datasets/OWNER/NAME[/PREFIX]`` or ``hf:OWNER/NAME``: a Hugging Face dataset repo in
  the Hub layout (``pipeline.publish.hub``: the category folder at ``<category>/``, versions
  as tags, a root card the Hub renders).
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from acmmg.layout import (
    LATEST,
    MANIFEST,
    VERSIONS,
    check_relpath,
    check_slug,
    check_version,
    derive_version,
    parse_manifest,
)
from acmmg.signing import SIGNATURE, sign_manifest, signing_key
from acmmg.transport import STORAGE_OPTIONS_ENV, hf_repo, open_target, storage_options_from_env
from pipeline.errors import UserError
from pipeline.io import sha256_file

log = logging.getLogger(__name__)

# Re-exported: the layout's names and checks are the light loader's (acmmg.layout).
__all__ = [
    "LATEST",
    "MANIFEST",
    "STORAGE_OPTIONS_ENV",
    "VERSIONS",
    "PublishError",
    "check_relpath",
    "check_slug",
    "check_version",
    "derive_version",
    "hf_repo",
    "open_target",
    "parse_manifest",
    "publish_folder",
    "storage_options_from_env",
]


class PublishError(UserError):
    """The folder cannot be published (bad manifest, changed files, immutable version)."""


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


# ----------------------------------------------------------------------------- publishing


def _check_folder(folder: Path) -> tuple[dict, bytes]:
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise PublishError(f"{folder} has no {MANIFEST}; assemble the category folder first")
    raw = mpath.read_bytes()
    manifest = parse_manifest(raw, str(folder))
    for rel, meta in manifest["files"].items():
        p = folder / rel
        if not p.is_file():
            raise PublishError(f"{p} is listed in the manifest but missing")
        size = p.stat().st_size
        if size != meta["size"]:
            raise PublishError(f"{p}: size {size} differs from the manifest's {meta['size']}")
        digest = sha256_file(p)
        if digest != meta["sha256"]:
            raise PublishError(f"{p}: sha256 {digest} differs from the manifest's {meta['sha256']}")
    listed = set(manifest["files"]) | {MANIFEST}
    extra = [
        str(p.relative_to(folder))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in listed
    ]
    if extra:
        log.warning("not published (absent from the manifest): %s", ", ".join(extra[:10]))
    return manifest, raw


def publish_folder(
    folder: Path,
    category: str,
    target: str,
    version: str | None = None,
    storage_options: dict | None = None,
    workers: int = 4,
    sign_key: str | os.PathLike | None = None,
) -> str:
    """Publish ``folder`` (an assembled category with manifest.json) as ``category``.

    The version is the content hash of the manifest's files (``version``, where given, must
    equal it). Every file is checked against the manifest before anything is uploaded.
    Returns the version; publishing a version that is already there with the same manifest
    uploads nothing (it only points ``LATEST`` at it, if it pointed elsewhere). A full disk or
    an unwritable target is a one-line ``PublishError``; readers keep the previous version.
    ``sign_key`` (or ``$ACMMG_SIGN_KEY``): an Ed25519 private key (PEM) to write the detached
    ``manifest.json.sig`` with (``acmmg.signing``).
    """
    folder = Path(folder)
    check_slug(category)
    manifest, raw = _check_folder(folder)
    derived = derive_version(manifest["files"])
    if version is not None and version != derived:
        raise PublishError(
            f"--version {version} differs from the manifest's version {derived} "
            "(versions are content hashes)"
        )
    version = derived
    key = signing_key(sign_key)
    signature = sign_manifest(raw, key) if key is not None else None

    if hf_repo(target) is not None:
        from pipeline.publish.hub import publish_hub

        return publish_hub(folder, category, target, manifest, raw, signature=signature)

    fs, root = open_target(target, storage_options)
    try:
        if _is_local(fs):
            from filelock import FileLock

            fs.makedirs(root, exist_ok=True)
            # One publish of a category at a time here, so what a killed one left is ours.
            with FileLock(f"{root}/.{category}.publish.lock"):
                _sweep_local(f"{root}/{category}", keep=version)
                _publish_version(
                    fs, folder, f"{root}/{category}", manifest, raw, signature, workers
                )
        else:
            _publish_version(fs, folder, f"{root}/{category}", manifest, raw, signature, workers)
    except OSError as e:
        raise PublishError(f"cannot publish {category} to {target}: {e.strerror or e}") from None
    return version


def already_published(
    folder: Path, category: str, target: str, storage_options: dict | None = None
) -> bool | None:
    """Whether ``target`` holds ``folder``'s version of ``category`` already (so publishing
    uploads nothing); None where that cannot be told cheaply (the Hub)."""
    if hf_repo(target) is not None:
        return None
    manifest, raw = _check_folder(Path(folder))
    version = derive_version(manifest["files"])
    try:
        fs, root = open_target(target, storage_options)
        remote = f"{root}/{category}/{VERSIONS}/{version}/{MANIFEST}"
        return bool(fs.exists(remote) and fs.cat_file(remote) == raw)
    except OSError:
        return False


def _publish_version(
    fs: Any,
    folder: Path,
    base: str,
    manifest: dict,
    raw: bytes,
    signature: bytes | None,
    workers: int,
) -> None:
    version = manifest["version"]
    vdir = f"{base}/{VERSIONS}/{version}"
    sig_path = f"{vdir}/{SIGNATURE}"
    remote_manifest = f"{vdir}/{MANIFEST}"
    if fs.exists(remote_manifest):
        if fs.cat_file(remote_manifest) != raw:
            raise PublishError(
                f"version {version} of {base.rsplit('/', 1)[-1]} is already published with a "
                "different manifest; versions are immutable (publish under a new version)"
            )
        log.info("%s version %s is already published; nothing uploaded", base, version)
        if signature is not None and not (
            fs.exists(sig_path) and fs.cat_file(sig_path) == signature
        ):
            _put_bytes(fs, signature, sig_path)  # signing a published version adds its signature
    else:
        _upload_files(fs, folder, vdir, manifest["files"], workers)
        if signature is not None:
            _put_bytes(fs, signature, sig_path)
        _put_atomic(fs, folder / MANIFEST, remote_manifest)  # the manifest completes a version
        log.info("uploaded %s version %s (%d files)", base, version, len(manifest["files"]))
    _replace_latest(fs, base, version)


def _remote_sha256(fs: Any, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _upload_files(fs: Any, folder: Path, vdir: str, files: dict, workers: int) -> None:
    def one(rel: str) -> None:
        dest = f"{vdir}/{rel}"
        meta = files[rel]
        # Resuming: what a killed publish left counts only if its bytes are the manifest's.
        if (
            fs.exists(dest)
            and fs.size(dest) == meta["size"]
            and _remote_sha256(fs, dest) == meta["sha256"]
        ):
            return
        _put_atomic(fs, folder / rel, dest)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, sorted(files)))


def _sweep_local(base: str, keep: str) -> None:
    """Remove what killed publishes left under ``base`` (called holding the publish lock):
    temp files, and version folders without a manifest other than ``keep``, which is resumed."""
    import shutil

    root = Path(base)
    if not root.is_dir():
        return
    for tmp in sorted(root.rglob(".*.tmp")):
        if tmp.is_file():
            log.info("removing %s, left by a killed publish", tmp)
            tmp.unlink()
    versions = root / VERSIONS
    for vdir in sorted(versions.iterdir()) if versions.is_dir() else []:
        if vdir.is_dir() and vdir.name != keep and not (vdir / MANIFEST).is_file():
            log.info("removing %s: a version a killed publish left without its manifest", vdir)
            shutil.rmtree(vdir)


def _atomic_local(dest: str, write: Callable[[str], Any]) -> None:
    """``write(tmp)`` a temp file beside ``dest``, then rename it onto ``dest`` (atomic)."""
    parent, name = dest.rsplit("/", 1)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _put_atomic(fs: Any, local: Path, dest: str) -> None:
    if _is_local(fs):
        _atomic_local(dest, lambda tmp: fs.put_file(str(local), tmp))
    else:
        fs.put_file(str(local), dest)  # one object PUT (or completed multipart): atomic


def _put_bytes(fs: Any, data: bytes, dest: str) -> None:
    if _is_local(fs):
        _atomic_local(dest, lambda tmp: Path(tmp).write_bytes(data))
    else:
        fs.pipe_file(dest, data)


def _replace_latest(fs: Any, base: str, version: str) -> None:
    latest = f"{base}/{LATEST}"
    data = f"{version}\n".encode()
    if fs.exists(latest) and fs.cat_file(latest) == data:
        return
    _put_bytes(fs, data, latest)
    log.info("%s now points at version %s", latest, version)
