"""The published layout's names and the checks every reader and writer applies to them.

A publish target holds, per category::

    <target>/<category>/versions/<version>/...   the category folder, manifest.json included
    <target>/<category>/LATEST                   one line: the version readers should use

(on a Hugging Face dataset repo the category folder is ``<category>/`` itself and versions
are tags; see ``acmmg.transport.HubSource``). ``manifest.json`` lists every file with its
size and sha256; the version is a content hash of that list (``derive_version``), so a
reader recomputes it and refuses a manifest that does not match the version it asked for.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from acmmg.errors import ManifestError, UserError

MANIFEST = "manifest.json"
LATEST = "LATEST"
VERSIONS = "versions"
IMAGES_TAR = "images.tar"
# Upper bounds on the small files read whole: a hostile source cannot make us buffer more.
MAX_MANIFEST_BYTES = 64 << 20
MAX_LATEST_BYTES = 4096

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        raise UserError(f"invalid category slug {slug!r} (letters, digits, '.', '_', '-')")
    return slug


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.match(version) or version in {".", ".."}:
        raise UserError(f"invalid version {version!r} (letters, digits, '.', '_', '+', '-')")
    return version


def check_relpath(rel: str) -> str:
    """A manifest path must stay inside the folder: relative, POSIX, no '..', no empties."""
    p = PurePosixPath(rel) if isinstance(rel, str) else None
    if (
        p is None
        or not rel
        or "\\" in rel
        or "\x00" in rel
        or p.is_absolute()
        or re.match(r"^[A-Za-z]:", rel)
        or any(part in {"", ".", ".."} for part in rel.split("/"))
    ):
        raise UserError(f"unsafe path in manifest: {rel!r}")
    return rel


def derive_version(files: dict[str, dict]) -> str:
    """The content version: first 16 hex of sha256 over the sorted (path, sha256) list."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\x00{files[rel]['sha256']}\n".encode())
    return h.hexdigest()[:16]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is no size


def parse_manifest(raw: bytes, where: str, version: str | None = None) -> dict:
    """Parse and validate manifest.json bytes strictly; one-line ``ManifestError`` otherwise.

    ``files`` maps safe relative paths (none the parent directory of another) to
    ``{"size": int >= 0, "sha256": 64 hex}``; ``version``, where present, must be the content
    hash of ``files``, and equal ``version`` when the caller asked for one.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where}: manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(raw)
    except RecursionError:
        raise ManifestError(f"{where}: manifest.json is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{where}: manifest.json is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: manifest.json is not a JSON object")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{where}: manifest.json has no 'files' mapping")
    for rel, meta in files.items():
        try:
            check_relpath(rel)
        except UserError as e:
            raise ManifestError(f"{where}: {e}") from None
        if rel == MANIFEST:
            raise ManifestError(f"{where}: manifest.json must not list itself")
        ok = (
            isinstance(meta, dict)
            and _is_int(meta.get("size"))
            and meta["size"] >= 0
            and isinstance(meta.get("sha256"), str)
            and _SHA256_RE.match(meta["sha256"])
        )
        if not ok:
            raise ManifestError(f"{where}: manifest entry for {rel!r} needs an int size and sha256")
    dirs = {str(p) for rel in files for p in PurePosixPath(rel).parents if str(p) != "."}
    clash = sorted(dirs & set(files))
    if clash:
        raise ManifestError(f"{where}: {clash[0]!r} is listed both as a file and as a directory")
    for key in ("version", "category", "format"):
        if key in manifest and not isinstance(manifest[key], str):
            raise ManifestError(f"{where}: manifest.json's {key!r} must be a string")
    for key in ("counts", "params", "stats"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise ManifestError(f"{where}: manifest.json's {key!r} must be an object")
    derived = derive_version(files)
    stated = manifest.get("version", derived)
    if stated != derived:
        raise ManifestError(
            f"{where}: manifest.json says version {stated} but its files hash to {derived}; "
            "refusing a manifest that does not match its version"
        )
    if version is not None and version != derived:
        raise ManifestError(
            f"{where}: asked for version {version}, but the manifest's files hash to {derived}; "
            "refusing a manifest that does not match its version"
        )
    return manifest


def select_files(
    files: Iterable[str], include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
) -> list[str]:
    """The manifest paths a partial download keeps, sorted.

    Patterns are shell globs over the manifest's paths (``embeddings/*``, ``*.npy``); a pattern
    naming a directory (``embeddings``) selects everything under it. ``include=None`` keeps
    every file; ``exclude`` then drops matches. An include pattern that selects nothing is an
    error (a typo would otherwise download nothing and look fine).
    """
    files = sorted(files)

    def match(rel: str, pat: str) -> bool:
        pat = pat.strip("/")
        return fnmatch.fnmatchcase(rel, pat) or rel.startswith(pat + "/")

    keep = files
    if include is not None:
        include = [include] if isinstance(include, str) else list(include)
        for pat in include:
            if not any(match(rel, pat) for rel in files):
                raise UserError(f"--include {pat!r} matches no file of the manifest")
        keep = [rel for rel in files if any(match(rel, p) for p in include)]
    if exclude is not None:
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        keep = [rel for rel in keep if not any(match(rel, p) for p in exclude)]
    return keep
