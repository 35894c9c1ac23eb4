"""Download a published category: the code lives in the light package (``acmmg.download``),
which researchers install alone (``pip install ./acmmg-data``); this module keeps the
pipeline's import path for ``acmmg download`` and the flows."""

from __future__ import annotations

from acmmg.download import (
    EXTRACTED_STAMP,
    PARTIAL_DIR,
    PARTIAL_MANIFEST,
    DownloadError,
    UnsafeArchiveError,
    check_tar_members,
    download_category,
    extract_images,
    partial_path,
)

__all__ = [
    "EXTRACTED_STAMP",
    "PARTIAL_DIR",
    "PARTIAL_MANIFEST",
    "DownloadError",
    "UnsafeArchiveError",
    "check_tar_members",
    "download_category",
    "extract_images",
    "partial_path",
]
