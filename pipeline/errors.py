"""Errors the library raises for problems a user can fix; the CLI prints them as one line.

Library modules raise these and never import the CLI (which sits on top of them).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: printed as one clear line, exit status 2."""


class StageError(UserError):
    """A stage cannot run on what it was given (a missing or stale input, a bad setting)."""
