"""The outbox as the command line shows it: outgoing replies with their send state, and failed attempts.

The console's outbox page narrows the same documents with an :class:`OutboxFilter` and reads them a
page at a time: the filters and the page are the database's (``WHERE``, ``LIMIT``/``OFFSET``), so a
long outbox is never read whole for one page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, true
from sqlalchemy.orm import Session

from postroom.core.data.messages import stored_addresses
from postroom.core.data.models import FailedMessageSendInfo, MediaProfile, Message, SMessageSendInfo
from postroom.core.data.paging import Window
from postroom.core.data.profiles import profile_names

#: A select statement, whatever it selects: the row queries and their counts share their WHERE.
SelectT = TypeVar("SelectT", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True)
class OutboxFilter:
    """What the console's outbox filters choose; a field left None chooses every row.

    ``since`` is inclusive and ``until`` exclusive (the page turns days into these). A reply is
    chosen by its own category and time, or, with a category, by a failed attempt of that category
    in the time span; a failed attempt by its own category and time and its reply's profile.
    """

    profile: str | None = None
    category: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _in_span(column: Any, chosen: OutboxFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if chosen.since is not None:
        conditions.append(column >= chosen.since)
    if chosen.until is not None:
        conditions.append(column < chosen.until)
    return conditions


def _profile_is(chosen: OutboxFilter) -> list[ColumnElement[bool]]:
    if not chosen.profile:
        return []
    return [SMessageSendInfo.media_profile_id.in_(select(MediaProfile.id).where(MediaProfile.name == chosen.profile))]


def _reply_conditions(chosen: OutboxFilter) -> list[ColumnElement[bool]]:
    own = and_(
        true(),
        *([SMessageSendInfo.category == chosen.category] if chosen.category else []),
        *_in_span(SMessageSendInfo.created_at, chosen),
    )
    if not chosen.category:
        return [*_profile_is(chosen), own]
    failing = exists().where(
        FailedMessageSendInfo.send_info_id == SMessageSendInfo.id,
        FailedMessageSendInfo.category == chosen.category,
        *_in_span(FailedMessageSendInfo.created_at, chosen),
    )
    return [*_profile_is(chosen), or_(own, failing)]


def _failure_conditions(chosen: OutboxFilter) -> list[ColumnElement[bool]]:
    return [
        *_profile_is(chosen),
        *([FailedMessageSendInfo.category == chosen.category] if chosen.category else []),
        *_in_span(FailedMessageSendInfo.created_at, chosen),
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def outbox_as_json(
    session: Session,
    contact_center_id: int,
    states: Sequence[str] = (),
    ticket_id: int | None = None,
    outbox_id: int | None = None,
    chosen: OutboxFilter | None = None,
    window: Window | None = None,
) -> list[dict[str, Any]]:
    """Outgoing replies of a contact centre, oldest first (``outbox list --json``); by state, ticket or id;
    with ``chosen`` the console's filters, with ``window`` one page of them, newest first."""
    query = _outbox_query(
        select(SMessageSendInfo, Message), contact_center_id, states, ticket_id, outbox_id, chosen
    )
    if window is None:
        query = query.order_by(SMessageSendInfo.id)
    else:
        query = query.order_by(SMessageSendInfo.id.desc()).limit(window.limit).offset(window.offset)
    names = profile_names(session)
    return [_outbox_row(row, message, names) for row, message in session.execute(query)]


def count_outbox(
    session: Session, contact_center_id: int, states: Sequence[str] = (), chosen: OutboxFilter | None = None
) -> int:
    """How many replies :func:`outbox_as_json` chooses with the same arguments (for the page count)."""
    query = _outbox_query(select(func.count()), contact_center_id, states, None, None, chosen)
    return int(session.scalar(query) or 0)


def _outbox_query(
    query: SelectT,
    contact_center_id: int,
    states: Sequence[str],
    ticket_id: int | None,
    outbox_id: int | None,
    chosen: OutboxFilter | None,
) -> SelectT:
    query = (
        query.select_from(SMessageSendInfo)
        .join(Message, Message.id == SMessageSendInfo.message_pk)
        .where(Message.contact_center_id == contact_center_id)
    )
    if states:
        query = query.where(SMessageSendInfo.state.in_(states))
    if ticket_id is not None:
        query = query.where(SMessageSendInfo.ticket_id == ticket_id)
    if outbox_id is not None:
        query = query.where(SMessageSendInfo.id == outbox_id)
    if chosen is not None:
        query = query.where(*_reply_conditions(chosen))
    return query


def _outbox_row(row: SMessageSendInfo, message: Message, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "profile": names.get(row.media_profile_id) if row.media_profile_id else None,
        "message_id": row.message_id,
        "to": [*stored_addresses(message.to_addresses), *stored_addresses(message.cc_addresses)],
        "pending": json.loads(row.pending_recipients or "[]"),
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_error": row.last_error,
        "category": row.category,
        "policy": row.policy,
        "sent_at": _iso(row.sent_at),
        "created_at": _iso(row.created_at),
        "claimed_by": row.claimed_by,
        "bounced_at": _iso(row.bounced_at),
    }


def failures_as_json(
    session: Session,
    contact_center_id: int,
    outbox_id: int | None = None,
    states: Sequence[str] = (),
    chosen: OutboxFilter | None = None,
    window: Window | None = None,
    ticket_id: int | None = None,
) -> list[dict[str, Any]]:
    """Failed send attempts of a contact centre, oldest first (``failures list --json``); of one reply;
    of one ticket's replies; with ``states`` of replies in those states, ``chosen`` and ``window`` as
    for :func:`outbox_as_json`."""
    query = _failures_query(select(FailedMessageSendInfo), contact_center_id, outbox_id, states, chosen)
    if ticket_id is not None:
        query = query.where(Message.ticket_id == ticket_id)
    if window is None:
        query = query.order_by(FailedMessageSendInfo.id)
    else:
        query = query.order_by(FailedMessageSendInfo.id.desc()).limit(window.limit).offset(window.offset)
    return [
        {
            "id": f.id,
            "outbox_id": f.send_info_id,
            "attempt": f.attempt,
            "recipient": f.recipient,
            "reply_code": f.reply_code,
            "enhanced_code": f.enhanced_code,
            "text": f.text,
            "category": f.category,
            "policy": f.policy,
            "next_attempt_at": _iso(f.next_attempt_at),
            "created_at": _iso(f.created_at),
        }
        for f in session.scalars(query)
    ]


def count_failures(
    session: Session, contact_center_id: int, states: Sequence[str] = (), chosen: OutboxFilter | None = None
) -> int:
    """How many failed attempts :func:`failures_as_json` chooses with the same arguments."""
    query = _failures_query(select(func.count()), contact_center_id, None, states, chosen)
    return int(session.scalar(query) or 0)


def _failures_query(
    query: SelectT,
    contact_center_id: int,
    outbox_id: int | None,
    states: Sequence[str],
    chosen: OutboxFilter | None,
) -> SelectT:
    query = (
        query.select_from(FailedMessageSendInfo)
        .join(SMessageSendInfo, SMessageSendInfo.id == FailedMessageSendInfo.send_info_id)
        .join(Message, Message.id == SMessageSendInfo.message_pk)
        .where(Message.contact_center_id == contact_center_id)
    )
    if outbox_id is not None:
        query = query.where(FailedMessageSendInfo.send_info_id == outbox_id)
    if states:
        query = query.where(SMessageSendInfo.state.in_(states))
    if chosen is not None:
        query = query.where(*_failure_conditions(chosen))
    return query


def failure_categories(contact_center_id: int) -> Select[str]:
    """The error categories of a contact centre's failed attempts, each once (the outbox filter offers them)."""
    return _failures_query(select(FailedMessageSendInfo.category), contact_center_id, None, (), None).distinct()
