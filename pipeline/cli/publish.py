"""``acmmg publish`` and ``acmmg download``.

    acmmg publish --category SLUG --from WORKDIR --to TARGET [--version V]
    acmmg download SLUG --from SOURCE --to DIR [--version V] [--workers N] [--no-progress]
                   [--include GLOB ...] [--exclude GLOB ...]

``--from`` of publish is the build work directory: the assembled folder is taken from
``WORKDIR/publish/SLUG/`` (assembled there first when it is missing), or ``--from`` may point
directly at an assembled folder (one holding manifest.json). TARGET / SOURCE: a local path,
any fsspec URL (s3://bucket/prefix ...), ``hf://datasets/OWNER/NAME`` (also
``hf:OWNER/NAME``), and for download also the target's http(s) URL. ``--include`` /
``--exclude`` download part of a category (globs over the manifest's paths), still verified. Filesystem options (for
example an S3 endpoint) come from ``--storage-options JSON`` or ``$ACMMG_STORAGE_OPTIONS``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from pipeline.errors import UserError


def _storage_options(raw: str | None) -> dict | None:
    if raw is None:
        return None  # the library falls back to $ACMMG_STORAGE_OPTIONS
    try:
        opts = json.loads(raw)
    except ValueError as e:
        raise UserError(f"--storage-options is not valid JSON: {e}") from e
    if not isinstance(opts, dict):
        raise UserError("--storage-options must be a JSON object")
    return opts


def resolve_folder(source: Path, slug: str) -> Path:
    """The assembled folder for ``--from``: itself, WORKDIR/publish/SLUG, or assembled now."""
    if (source / "manifest.json").is_file():
        return source
    folder = source / "publish" / slug
    if (folder / "manifest.json").is_file():
        return folder
    if not source.is_dir():
        raise UserError(f"--from {source}: no such directory")
    try:
        assemble = importlib.import_module("pipeline.publish.assemble")
    except ImportError as e:
        raise UserError(f"{folder} is not assembled and the assemble stage is unavailable") from e
    return Path(assemble.assemble_category(source, folder, assemble.AssembleParams(category=slug)))


def _publish(args: argparse.Namespace) -> int:
    from pipeline.publish.targets import check_slug, publish_folder

    slug = check_slug(args.category)
    folder = resolve_folder(Path(args.source), slug)
    version = publish_folder(
        folder,
        slug,
        args.target,
        version=args.version,
        storage_options=_storage_options(args.storage_options),
        sign_key=args.sign_key,
    )
    print(version)
    return 0


def _download(args: argparse.Namespace) -> int:
    from pipeline.download import download_category

    out = download_category(
        args.slug,
        args.source,
        Path(args.dest),
        version=args.version,
        workers=args.workers,
        progress=not args.no_progress and sys.stderr.isatty(),
        storage_options=_storage_options(args.storage_options),
        include=args.include,
        exclude=args.exclude,
        public_key=args.public_key,
    )
    print(out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    so_help = "JSON object of fsspec filesystem options (default: $ACMMG_STORAGE_OPTIONS)"
    p = sub.add_parser(
        "publish",
        help="publish an assembled category folder atomically to a target",
        description="Upload the files, then manifest.json, then replace <category>/LATEST.",
    )
    p.add_argument("--category", required=True, help="category slug, e.g. electronics")
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        help="work directory (uses WORKDIR/publish/SLUG) or an assembled folder",
    )
    p.add_argument(
        "--to",
        dest="target",
        required=True,
        help="local dir, fsspec URL (s3://...), or hf://datasets/OWNER/NAME",
    )
    p.add_argument("--version", help="version name (default: the manifest's)")
    p.add_argument("--storage-options", help=so_help)
    p.add_argument(
        "--sign-key",
        metavar="PEM",
        help="Ed25519 private key: also publish manifest.json.sig (default: $ACMMG_SIGN_KEY)",
    )
    p.set_defaults(func=_publish)

    d = sub.add_parser(
        "download",
        help="download a published category into DIR/SLUG, verified",
        description="Resolve LATEST (or --version), fetch, verify sha256, extract images.tar.",
    )
    d.add_argument("slug", help="category slug")
    d.add_argument(
        "--from",
        dest="source",
        required=True,
        help="the publish target: http(s) URL, hf://datasets/OWNER/NAME, fsspec URL or path",
    )
    d.add_argument("--to", dest="dest", required=True, help="directory to download into")
    d.add_argument("--version", help="version to fetch (default: LATEST)")
    d.add_argument("--workers", type=int, default=8, help="parallel downloads (default 8)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="download only the files matching GLOB (repeatable; e.g. 'embeddings/*')",
    )
    d.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="skip the files matching GLOB (repeatable; e.g. images.tar)",
    )
    d.add_argument("--storage-options", help=so_help)
    d.add_argument(
        "--public-key",
        metavar="PEM",
        help="pinned Ed25519 public key: refuse a manifest whose signature does not verify "
        "(default: $ACMMG_PUBLIC_KEY)",
    )
    d.set_defaults(func=_download)
