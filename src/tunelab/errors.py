"""Errors a user can cause and fix.

The CLI prints a `UserError` on one line and exits with code 2, with no traceback.
Bugs raise ordinary exceptions.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem in the user's input: config, data, storage, flags.

    The message must name the file, key or value at fault and say what to do.
    """
