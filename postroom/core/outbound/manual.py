"""An operator's hand on the outbox (``postroom outbox retry-now|cancel`` and the console's buttons):
send a waiting reply at the next send run, or give it up.

Both change a row only while it waits (queued or retry-scheduled), with one conditional UPDATE, so
a row a sender has just claimed (``sending``) is refused rather than changed under the sender.
A cancelled reply is ``failed`` with the reason "Cancelled by an operator."; no failure signal goes
out (nothing was refused by a server).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.models import Message, SendState, SMessageSendInfo, utcnow

WAITING = (SendState.QUEUED, SendState.RETRY_SCHEDULED)
CANCELLED = "Cancelled by an operator."


def _waiting_row(session: Session, contact_center_id: int, outbox_id: int, doing: str) -> None:
    state = session.scalar(
        select(SMessageSendInfo.state)
        .join(Message, Message.id == SMessageSendInfo.message_pk)
        .where(SMessageSendInfo.id == outbox_id, Message.contact_center_id == contact_center_id)
    )
    if state is None:
        raise NotFoundError(f"There is no outgoing reply {outbox_id}; 'postroom outbox list' shows them.")
    if state not in WAITING:
        raise UserError(
            f"Reply {outbox_id} is {state}; only a queued or retry-scheduled reply can be {doing}."
        )


def _change(session: Session, contact_center_id: int, outbox_id: int, doing: str, **values: object) -> None:
    _waiting_row(session, contact_center_id, outbox_id, doing)
    result = session.execute(
        update(SMessageSendInfo)
        .where(SMessageSendInfo.id == outbox_id, SMessageSendInfo.state.in_(WAITING))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    changed = cast(CursorResult[Any], result).rowcount
    if not changed:  # claimed by a sender between the look and the change
        _waiting_row(session, contact_center_id, outbox_id, doing)
        raise UserError(f"Reply {outbox_id} changed meanwhile; look at it again.")


def retry_now(session: Session, contact_center_id: int, outbox_id: int, now: datetime | None = None) -> None:
    """Make a waiting reply due now: the next send run (the worker's, or ``postroom send``) tries it."""
    _change(session, contact_center_id, outbox_id, "sent now", next_attempt_at=now or utcnow())


def cancel(session: Session, contact_center_id: int, outbox_id: int) -> None:
    """Give up a waiting reply: it is never sent, and stays in the outbox as failed with the reason."""
    _change(
        session,
        contact_center_id,
        outbox_id,
        "cancelled",
        state=SendState.FAILED,
        next_attempt_at=None,
        last_error=CANCELLED,
    )
