"""Errors the library raises for problems a user can fix; the CLI prints them as one line.

Library modules raise these and never import the CLI (which sits on top of them). The base
class is the light loader's (``acmmg.errors``), so its download errors are user errors too.
"""

from __future__ import annotations

from acmmg.errors import UserError

__all__ = ["StageError", "UserError"]


class StageError(UserError):
    """A stage cannot run on what it was given (a missing or stale input, a bad setting)."""
