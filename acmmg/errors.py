"""Errors of the light loader, each printed by the CLI as one line (exit status 2).

``pipeline.errors.UserError`` is this class, so the pipeline's CLI treats download errors as
user-fixable problems without the light package importing the pipeline.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or source: printed as one clear line, exit status 2."""


class DownloadError(UserError):
    """A file could not be fetched or failed verification."""


class UnsafeArchiveError(DownloadError):
    """A tar member would land outside the folder, is not a plain file, or is too large."""


class ManifestError(UserError):
    """A manifest.json that does not follow the schema (or does not match its version)."""
