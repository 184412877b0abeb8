"""The application object behind the console, for pages: :func:`postroom_app` and :func:`transaction`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy.orm import Session

from postroom.core.app import Postroom

#: The key of the :class:`Postroom` in ``flask_app.extensions``.
EXTENSION = "postroom"


def postroom_app() -> Postroom:
    """The :class:`Postroom` the console was created with (the same database as the CLI and the worker)."""
    found: Postroom = current_app.extensions[EXTENSION]
    return found


@contextmanager
def transaction() -> Iterator[Session]:
    """A database session committed at the end of the block (rolled back on error), as the CLI's."""
    with postroom_app().transaction() as session:
        yield session
