"""Storing messages, inbound and outbound alike: the message row, its raw bytes and its address rows.

Every text value is fitted to its column (:mod:`postroom.core.data.columns`). A batch costs one
flush for the rows and one statement each for the raw bytes and the addresses, and the raw bytes
are never copied on the way (:func:`postroom.core.data.raw_store.insert_raws`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from postroom.core.data.columns import fit, fitted
from postroom.core.data.models import Message, MessageAddress
from postroom.core.data.raw_store import insert_raws

_ADDRESS_TABLE = cast(Table, MessageAddress.__table__)


@dataclass(frozen=True)
class MailToStore:
    """A new message with the bytes it was made of and its ``(role, address)`` pairs (from, to, cc)."""

    message: Message
    raw: bytes
    addresses: Sequence[tuple[str, str]] = ()


def new_message(**values: Any) -> Message:
    """A message row (not yet added to a session) with every text value fitted to its column."""
    return Message(**fitted(Message, values))


def address_roles(from_address: str | None, to: Iterable[str], cc: Iterable[str]) -> list[tuple[str, str]]:
    """The ``(role, address)`` pairs of a mail's sender, To and Cc, in that order."""
    return [
        *([("from", from_address)] if from_address else []),
        *(("to", a) for a in to),
        *(("cc", a) for a in cc),
    ]


def address_column(addresses: Iterable[str]) -> str:
    """The ``to_addresses``/``cc_addresses``/``reply_to`` value of addresses: a JSON list."""
    return json.dumps(list(addresses), ensure_ascii=False)


def stored_addresses(value: str | None) -> list[str]:
    """The addresses of an address column: a JSON list, or (a row stored before issue 11) joined by commas."""
    if not value:
        return []
    if value.startswith("[") and value.endswith("]"):
        try:
            found = json.loads(value)
        except ValueError:
            found = None
        if isinstance(found, list) and all(isinstance(a, str) for a in found):
            return [a for a in found if a]
    return [a.strip() for a in value.split(",") if a.strip()]


def attachment_summary(attachments: Iterable[tuple[str | None, str, int]]) -> str:
    """The ``attachments`` column: a JSON list of ``{"name", "content_type", "size"}``."""
    return json.dumps([{"name": n, "content_type": t, "size": s} for n, t, s in attachments])


def store_messages(session: Session, mails: Sequence[MailToStore]) -> None:
    """Add the messages with their raw bytes and address rows (each role and address once) to the session.

    The messages get their primary keys here; nothing is committed.
    """
    if not mails:
        return
    session.add_all(mail.message for mail in mails)
    session.flush()
    insert_raws(session, [(mail.message.id, mail.raw) for mail in mails])
    rows = [
        {"message_pk": mail.message.id, "role": role, "address": fit(MessageAddress.address, address)}
        for mail in mails
        for role, address in dict.fromkeys((role, address.lower()) for role, address in mail.addresses)
    ]
    if rows:  # a Core insert of the table: the flush just now left nothing for the ORM to do first
        session.execute(insert(_ADDRESS_TABLE), rows)
