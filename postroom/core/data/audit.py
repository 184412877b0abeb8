"""The audit log: every configuration change, who made it and when (issue 13).

The console's pages and the command line both call :func:`record` in the transaction that makes the
change, so the entry is committed with the change or not at all. ``detail`` is JSON and must never
hold a password, a token or a client secret.
"""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from postroom.core.data.models import AuditLog, utcnow


def record(
    session: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
) -> AuditLog:
    """Add one audit entry to ``session`` (committed with the change it describes)."""
    entry = AuditLog(
        at=utcnow(), actor=actor[:255], action=action[:64], target=target[:255], detail=detail or {}
    )
    session.add(entry)
    return entry


def cli_actor() -> str:
    """The actor of a change made on the command line: ``cli:<system user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container) and no $USER
        user = "unknown"
    return f"cli:{user}"


def recent(
    session: Session,
    limit: int = 200,
    actor: str | None = None,
    action: str | None = None,
    offset: int = 0,
) -> list[AuditLog]:
    """The newest entries first, optionally of one actor or one action; ``limit`` of them after ``offset``."""
    query = _of(select(AuditLog), actor, action)
    query = query.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def count(session: Session, actor: str | None = None, action: str | None = None) -> int:
    """How many entries :func:`recent` chooses from (for the page count)."""
    return int(session.scalar(_of(select(func.count()).select_from(AuditLog), actor, action)) or 0)


def _of(query: Select[Any], actor: str | None, action: str | None) -> Select[Any]:
    if actor:
        query = query.where(AuditLog.actor == actor)
    if action:
        query = query.where(AuditLog.action == action)
    return query
