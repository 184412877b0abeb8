"""Which page of a long list a page shows (``?ARG=N``): the query reads only those rows.

The core's list queries take a :class:`~postroom.core.data.paging.Window` (``LIMIT``/``OFFSET``) and
give a count; a page asks for both and shows links to the pages before and after
(``templates/operator/_pager.html``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from postroom.core.data.paging import Window

#: Rows on one page of a list (outbox, failed attempts, held mail, the audit log).
PAGE_SIZE = 50


@dataclass(frozen=True)
class Pager:
    """Which page of a list is shown (``?ARG=N``, from 1), of how many rows; the query reads only it."""

    arg: str
    number: int
    total: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def window(self) -> Window:
        return Window(limit=self.size, offset=(self.number - 1) * self.size)


def pager(arg: str, total: int, size: int = PAGE_SIZE) -> Pager:
    """The page asked for in ``?ARG=``, within 1 .. the last page (a page number that is not one shows page 1)."""
    try:
        asked = int(request.args.get(arg, "1"))
    except ValueError:
        asked = 1
    pages = max(1, -(-total // size))
    return Pager(arg, min(max(asked, 1), pages), total, size)
