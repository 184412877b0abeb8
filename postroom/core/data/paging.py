"""One page of a long list, read with ``LIMIT``/``OFFSET`` by the query that makes the list.

The console's lists (outbox, failed attempts, held mail, the audit log) pass a :class:`Window` to the
core's query functions, which the CLI calls without one (every row, as before).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """``limit`` rows after the first ``offset``; a windowed list is newest first."""

    limit: int
    offset: int = 0
