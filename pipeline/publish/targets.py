"""Publish an assembled category folder to a target, atomically and versioned.

Layout on every target (local directory, any fsspec URL, Hugging Face dataset repo)::

    <target>/<category>/versions/<version>/...   the category folder, manifest.json included
    <target>/<category>/LATEST                   one line: the version readers should use

Readers (``pipeline.download``) resolve ``LATEST``, then read that version's manifest, then
the files. The writer orders its steps so a reader never sees a half-written version: every
data file first, ``manifest.json`` last, then ``LATEST`` replaced in one step (temp file +
rename on a local directory; a single PUT on an object store, which is atomic). A version is
immutable: publishing the same version again uploads nothing; publishing different content
under an existing version is refused. An interrupted publish is resumed: files already
complete in the version directory (atomic per file) are not uploaded again.

Targets:
- a local directory path or ``file://`` URL;
- any fsspec URL (``s3://bucket/prefix``, ``gcs://...``); options for the filesystem (for
  example ``{"endpoint_url": "http://127.0.0.1:9000"}`` for an S3-compatible server) come from
  ``storage_options`` or the ``ACMMG_STORAGE_OPTIONS`` environment variable (JSON);
- ``hf://datasets/OWNER/NAME[/PREFIX]`` or ``hf:OWNER/NAME``: a Hugging Face dataset repo,
  written with ``huggingface_hub`` in one commit (same layout; token from ``HF_TOKEN``). This
  path is not exercised by the tests (no network here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import UserError
from pipeline.io import sha256_file

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LATEST = "LATEST"
VERSIONS = "versions"
STORAGE_OPTIONS_ENV = "ACMMG_STORAGE_OPTIONS"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PublishError(UserError):
    """The folder cannot be published (bad manifest, changed files, immutable version)."""


# ----------------------------------------------------------------------------- shared helpers


def check_slug(slug: str) -> str:
    if not _SLUG_RE.match(slug):
        raise UserError(f"invalid category slug {slug!r} (letters, digits, '.', '_', '-')")
    return slug


def check_version(version: str) -> str:
    if not _VERSION_RE.match(version) or version in {".", ".."}:
        raise UserError(f"invalid version {version!r} (letters, digits, '.', '_', '+', '-')")
    return version


def check_relpath(rel: str) -> str:
    """A manifest path must stay inside the folder: relative, POSIX, no '..', no empties."""
    p = PurePosixPath(rel)
    if (
        not rel
        or "\\" in rel
        or "\x00" in rel
        or p.is_absolute()
        or re.match(r"^[A-Za-z]:", rel)
        or any(part in {"", ".", ".."} for part in rel.split("/"))
    ):
        raise UserError(f"unsafe path in manifest: {rel!r}")
    return rel


def derive_version(files: dict[str, dict]) -> str:
    """Deterministic version from the files' sha256s (as pipeline.publish.assemble does)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\x00{files[rel]['sha256']}\n".encode())
    return h.hexdigest()[:16]


def parse_manifest(raw: bytes, where: str) -> dict:
    """Parse and validate manifest.json bytes (``files`` with size and sha256 per path)."""
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        raise UserError(f"{where}: manifest.json is not valid JSON ({e})") from e
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise UserError(f"{where}: manifest.json has no 'files' mapping")
    for rel, meta in files.items():
        check_relpath(rel)
        if rel == MANIFEST:
            raise UserError(f"{where}: manifest.json must not list itself")
        ok = (
            isinstance(meta, dict)
            and isinstance(meta.get("size"), int)
            and meta["size"] >= 0
            and isinstance(meta.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
        )
        if not ok:
            raise UserError(f"{where}: manifest entry for {rel!r} needs an int size and sha256")
    if "version" in manifest:
        check_version(str(manifest["version"]))
    return manifest


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


def open_target(target: str, storage_options: dict | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and root path of a local directory or fsspec URL."""
    import fsspec

    opts = storage_options_from_env(storage_options)
    try:
        fs, root = fsspec.core.url_to_fs(target, **opts)
    except (ImportError, ValueError) as e:
        raise UserError(f"cannot open {target}: {e}") from e
    return fs, root.rstrip("/") or root


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
) -> str:
    """Publish ``folder`` (an assembled category with manifest.json) as ``category``.

    The version is ``version``, else the manifest's ``version``, else derived from the files'
    sha256s. Every file is checked against the manifest before anything is uploaded. Returns
    the version; publishing a version that is already there with the same manifest uploads
    nothing (it only points ``LATEST`` at it, if it pointed elsewhere).
    """
    folder = Path(folder)
    check_slug(category)
    manifest, raw = _check_folder(folder)
    if version is None:
        version = str(manifest.get("version") or derive_version(manifest["files"]))
    elif "version" in manifest and str(manifest["version"]) != version:
        raise PublishError(
            f"--version {version} differs from the manifest's version {manifest['version']}"
        )
    check_version(version)

    if hf_repo(target) is not None:
        return _publish_hf(folder, category, target, version, manifest, raw)

    fs, root = open_target(target, storage_options)
    base = f"{root}/{category}"
    vdir = f"{base}/{VERSIONS}/{version}"
    remote_manifest = f"{vdir}/{MANIFEST}"
    if fs.exists(remote_manifest):
        if fs.cat_file(remote_manifest) != raw:
            raise PublishError(
                f"{target}: version {version} of {category} is already published with a "
                "different manifest; versions are immutable (publish under a new version)"
            )
        log.info("%s version %s is already published; nothing uploaded", category, version)
    else:
        _upload_files(fs, folder, vdir, manifest["files"], workers)
        _put_atomic(fs, folder / MANIFEST, remote_manifest)  # the manifest completes a version
        log.info("uploaded %s version %s (%d files)", category, version, len(manifest["files"]))
    _replace_latest(fs, base, version)
    return version


def _upload_files(fs: Any, folder: Path, vdir: str, files: dict, workers: int) -> None:
    def one(rel: str) -> None:
        dest = f"{vdir}/{rel}"
        # A file of the right size is complete: each upload below is atomic per file.
        if fs.exists(dest) and fs.size(dest) == files[rel]["size"]:
            return
        _put_atomic(fs, folder / rel, dest)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, sorted(files)))


def _put_atomic(fs: Any, local: Path, dest: str) -> None:
    parent = dest.rsplit("/", 1)[0]
    if _is_local(fs):
        fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{dest.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        try:
            fs.put_file(str(local), tmp)
            os.replace(tmp, dest)  # same directory: an atomic rename
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        fs.put_file(str(local), dest)  # one object PUT (or completed multipart): atomic


def _replace_latest(fs: Any, base: str, version: str) -> None:
    latest = f"{base}/{LATEST}"
    data = f"{version}\n".encode()
    if fs.exists(latest) and fs.cat_file(latest) == data:
        return
    if _is_local(fs):
        fs.makedirs(base, exist_ok=True)
        tmp = f"{base}/.{LATEST}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, latest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        fs.pipe_file(latest, data)
    log.info("%s now points at version %s", latest, version)


def _publish_hf(
    folder: Path, category: str, target: str, version: str, manifest: dict, raw: bytes
) -> str:
    """One commit with every file, the manifest and LATEST (untested here: no network)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.utils import EntryNotFoundError, RevisionNotFoundError

    repo_id, prefix = hf_repo(target)  # type: ignore[misc]
    base = f"{prefix.strip('/')}/{category}".lstrip("/")
    vdir = f"{base}/{VERSIONS}/{version}"
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)

    def fetch(path_in_repo: str) -> bytes | None:
        try:
            return Path(
                api.hf_hub_download(repo_id, path_in_repo, repo_type="dataset")
            ).read_bytes()
        except (EntryNotFoundError, RevisionNotFoundError):
            return None

    existing = fetch(f"{vdir}/{MANIFEST}")
    if existing is not None and existing != raw:
        raise PublishError(
            f"{target}: version {version} of {category} is already published with a "
            "different manifest; versions are immutable"
        )
    if existing is not None and fetch(f"{base}/{LATEST}") == f"{version}\n".encode():
        return version  # already published and current: no commit
    ops = []
    if existing is None:
        ops += [
            CommitOperationAdd(path_in_repo=f"{vdir}/{rel}", path_or_fileobj=str(folder / rel))
            for rel in sorted(manifest["files"])
        ]
        ops.append(CommitOperationAdd(f"{vdir}/{MANIFEST}", str(folder / MANIFEST)))
    ops.append(CommitOperationAdd(f"{base}/{LATEST}", f"{version}\n".encode()))
    api.create_commit(
        repo_id,
        operations=ops,
        repo_type="dataset",
        commit_message=f"Publish {category} {version}",
    )
    return version
