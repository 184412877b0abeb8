"""The outbox's SQL: claim due replies under a lease, read them, renew or give back the lease, record a transition.

Every function takes the outcome writer's connection and commits its own work. A claim is one
UPDATE, so SQLite's single writer never meets a stale read; on PostgreSQL its subquery skips the
rows another sender has locked (``FOR UPDATE SKIP LOCKED``), so two senders never claim one row.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from postroom.core.data.db import is_postgresql
from postroom.core.data.models import FailedMessageSendInfo, MessageRaw, SendState, SMessageSendInfo
from postroom.core.outbound.decision import ClaimedReply, Transition

#: The most bytes of queued mails a sender reads at once (see :func:`next_chunk`).
RAW_CHUNK_BYTES = 16 * 1024 * 1024

_SEND_INFO = cast(Table, SMessageSendInfo.__table__)
_FAILED = cast(Table, FailedMessageSendInfo.__table__)
#: An outcome, written only while the writer's claim still holds the row (the SET clause comes from
#: the parameters' keys).
_OUTCOME_UPDATE = update(_SEND_INFO).where(
    _SEND_INFO.c.id == bindparam("row_id"), _SEND_INFO.c.claimed_by == bindparam("token")
)


@dataclass(frozen=True)
class ClaimedRow:
    """The columns of one claimed ``s_message_send_info`` row that an attempt reads."""

    id: int
    message_pk: int
    media_profile_id: int | None
    envelope_from: str | None
    pending_recipients: str
    attempts: int
    sent_at: datetime | None

    def reply(self) -> ClaimedReply:
        """The row as the outbox's rules take it."""
        return ClaimedReply(
            id=self.id,
            profile_id=self.media_profile_id,
            attempts=self.attempts,
            pending_recipients=tuple(json.loads(self.pending_recipients or "[]")),
            sent_at=self.sent_at,
        )


_ROW_COLUMNS = tuple(name for name in ClaimedRow.__dataclass_fields__)


def worker_name() -> str:
    """Who holds a claim: host and process, so an operator can tell senders apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


def due(now: datetime) -> ColumnElement[bool]:
    """Rows to send now: queued or scheduled and due, or claimed by a sender whose lease ran out."""
    row = SMessageSendInfo
    return or_(
        and_(
            row.state.in_([SendState.QUEUED, SendState.RETRY_SCHEDULED]),
            or_(row.next_attempt_at <= now, row.next_attempt_at.is_(None)),
        ),
        and_(row.state == SendState.SENDING, row.claim_expires_at <= now),
    )


def claim(
    connection: Connection, now: datetime, after_id: int, *, worker: str, lease: timedelta, batch_size: int
) -> tuple[str, list[int]]:
    """Claim up to ``batch_size`` due rows with ids above ``after_id``; return the claim and its ids."""
    token = f"{worker}/{uuid.uuid4().hex[:8]}"
    row = _SEND_INFO.c
    candidates = select(row.id).where(due(now), row.id > after_id).order_by(row.id).limit(batch_size)
    if is_postgresql(connection.engine):
        candidates = candidates.with_for_update(skip_locked=True)
    claimed = connection.scalars(
        update(_SEND_INFO)
        .where(row.id.in_(candidates.scalar_subquery()))
        .values(state=SendState.SENDING, claimed_by=token, claim_expires_at=now + lease)
        .returning(row.id)
    ).all()
    connection.commit()
    return token, sorted(claimed)


def load(connection: Connection, ids: Sequence[int]) -> tuple[list[ClaimedRow], dict[int, int]]:
    """The claimed rows, and the size of each one's mail (the bytes come in chunks, see :func:`load_raws`)."""
    rows = [
        ClaimedRow(**mapping)
        for mapping in connection.execute(
            select(*(_SEND_INFO.c[name] for name in _ROW_COLUMNS)).where(_SEND_INFO.c.id.in_(ids))
        ).mappings()
    ]
    sizes: dict[int, int] = dict(
        connection.execute(
            select(MessageRaw.message_pk, func.length(MessageRaw.raw)).where(
                MessageRaw.message_pk.in_([r.message_pk for r in rows])
            )
        ).all()
    )
    connection.commit()
    return rows, sizes


def load_raws(connection: Connection, message_pks: Sequence[int]) -> dict[int, bytes]:
    """The raw bytes of the given queued mails."""
    raws = dict(
        connection.execute(
            select(MessageRaw.message_pk, MessageRaw.raw).where(MessageRaw.message_pk.in_(message_pks))
        ).all()
    )
    connection.commit()
    return raws


def next_chunk(rows: Sequence[ClaimedRow], sizes: dict[int, int]) -> list[int]:
    """The mails of ``rows`` (from the first) whose bytes add up to at most :data:`RAW_CHUNK_BYTES`.

    Always at least the first, however big it is: a batch of replies with large attachments is
    held in memory a few at a time, and a batch of ordinary replies in one query.
    """
    chunk: list[int] = []
    total = 0
    for row in rows:
        size = sizes.get(row.message_pk)
        if size is None:
            continue
        if chunk and total + size > RAW_CHUNK_BYTES:
            break
        chunk.append(row.message_pk)
        total += size
    return chunk


def release(connection: Connection, token: str, ids: Sequence[int]) -> None:
    """Give back the rows of a claim not yet attempted, e.g. when a run is interrupted."""
    row = _SEND_INFO.c
    for state, condition in (
        (SendState.QUEUED, row.attempts == 0),
        (SendState.RETRY_SCHEDULED, row.attempts > 0),
    ):
        connection.execute(
            update(_SEND_INFO)
            .where(row.id.in_(ids), row.claimed_by == token, row.state == SendState.SENDING, condition)
            .values(state=state, claim_expires_at=None)
        )
    connection.commit()


def renew(
    connection: Connection, token: str, ids: Sequence[int], now: datetime, lease: timedelta
) -> set[int]:
    """Extend a claim's lease; the ids still held (another sender may have taken over expired ones)."""
    row = _SEND_INFO.c
    held = set(
        connection.scalars(
            update(_SEND_INFO)
            .where(row.id.in_(ids), row.claimed_by == token, row.state == SendState.SENDING)
            .values(claim_expires_at=now + lease)
            .returning(row.id)
        )
    )
    connection.commit()
    return held


def write_transition(connection: Connection, token: str, row_id: int, transition: Transition) -> None:
    """An attempt's failure records, then the row's new state, as Core statements (the caller commits).

    Core rather than the ORM's unit of work: this runs once per mail, and the ORM's change
    tracking cost more than the statement. The row is written only while this claim holds it.
    On PostgreSQL each statement commits on its own (see ``unsynced_connection``); the failures
    come first, so a crash between the two leaves a true record of an attempt and a row that is
    tried again after its lease.
    """
    if transition.failure_records:
        connection.execute(insert(_FAILED), [asdict(record) for record in transition.failure_records])
    connection.execute(
        _OUTCOME_UPDATE,
        {
            "row_id": row_id,
            "token": token,
            "state": transition.state,
            "attempts": transition.attempts,
            "next_attempt_at": transition.next_attempt_at,
            "last_error": transition.last_error,
            "category": transition.category,
            "policy": transition.policy,
            "pending_recipients": json.dumps(list(transition.pending_recipients)),
            "sent_at": transition.sent_at,
            "claim_expires_at": None,
        },
    )
