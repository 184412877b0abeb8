"""Errors a user can cause, said in one sentence; the CLI prints them without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for (a bad value, an unknown name)."""


class NotFoundError(UserError):
    """The named object does not exist."""
