"""The outbox: claim due replies, send them over one connection per profile, and record every outcome.

Delivery is at least once (DESIGN §7): a claim is a lease, so the rows of a sender that dies come
back once it expires, and a crash between the server's 250 and the commit sends that mail again,
with the same Message-ID. On PostgreSQL, claims use ``FOR UPDATE SKIP LOCKED``, so several
senders never claim one row twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from postroom.core import events
from postroom.core.app import Postroom
from postroom.core.configuration import retry_settings
from postroom.core.db import is_postgresql
from postroom.core.errors import UserError
from postroom.core.models import (
    FailedMessageSendInfo,
    MediaProfile,
    MessageRaw,
    SendState,
    SMessageSendInfo,
    utcnow,
)
from postroom.core.protocols import SendFailure
from postroom.core.retry import ErrorCategory
from postroom.core.send_connections import Connections, NoProvider
from postroom.core.smtp_status import parse_enhanced_status

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_BATCH_SIZE = 100
TEXT_LIMIT = 4000


@dataclass
class OutboxReport:
    """What one ``send_due`` run did, counted per outbox row."""

    claimed: int = 0
    sent: int = 0
    #: Some recipients accepted, the refused ones scheduled for a retry.
    partial: int = 0
    retry_scheduled: int = 0
    failed: int = 0
    copy_errors: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class _Failure:
    """One failed delivery in an attempt: to one recipient, or (``recipient`` None) to all pending ones."""

    error: SendFailure
    recipient: str | None
    category: ErrorCategory
    policy: str = ""
    retry_at: datetime | None = None


@dataclass
class _Outcome:
    """What one attempt of one row came to, for the signals sent after its commit."""

    delivered: list[str] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    first_delivery: bool = False


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


class Outbox:
    """Sends due replies. One instance per run; ``now`` fixes the clock (tests), else it is real time."""

    def __init__(
        self,
        app: Postroom,
        *,
        lease: timedelta = DEFAULT_LEASE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        worker: str | None = None,
    ) -> None:
        self.app = app
        self.lease = lease
        self.batch_size = batch_size
        self.worker = worker or worker_name()

    # --- claiming ---------------------------------------------------------------------------------

    def claim(self, now: datetime, after_id: int = 0) -> tuple[str, list[int]]:
        """Claim up to a batch of due rows with ids above ``after_id``; commit; return the claim and ids.

        One UPDATE takes the rows, so SQLite's single writer never meets a stale read, and on
        PostgreSQL its subquery skips rows another sender has locked.
        """
        token = f"{self.worker}/{uuid.uuid4().hex[:8]}"
        row = SMessageSendInfo
        with self.app.transaction() as session:
            candidates = (
                select(row.id).where(due(now), row.id > after_id).order_by(row.id).limit(self.batch_size)
            )
            if is_postgresql(self.app.engine):
                candidates = candidates.with_for_update(skip_locked=True)
            claimed = session.scalars(
                update(row)
                .where(row.id.in_(candidates.scalar_subquery()))
                .values(state=SendState.SENDING, claimed_by=token, claim_expires_at=now + self.lease)
                .returning(row.id),
                execution_options={"synchronize_session": False},
            ).all()
        return token, sorted(claimed)

    def release(self, token: str, ids: Sequence[int]) -> None:
        """Give back the rows of a claim not yet attempted, e.g. when a run is interrupted."""
        row = SMessageSendInfo
        with self.app.transaction() as session:
            for state, condition in (
                (SendState.QUEUED, row.attempts == 0),
                (SendState.RETRY_SCHEDULED, row.attempts > 0),
            ):
                session.execute(
                    update(row)
                    .where(
                        row.id.in_(ids), row.claimed_by == token, row.state == SendState.SENDING, condition
                    )
                    .values(state=state, claim_expires_at=None),
                    execution_options={"synchronize_session": False},
                )

    def _renew(self, token: str, ids: Sequence[int], now: datetime) -> set[int]:
        """Extend a claim's lease; the ids still held (another sender may have taken over expired ones)."""
        row = SMessageSendInfo
        with self.app.transaction() as session:
            return set(
                session.scalars(
                    update(row)
                    .where(row.id.in_(ids), row.claimed_by == token, row.state == SendState.SENDING)
                    .values(claim_expires_at=now + self.lease)
                    .returning(row.id),
                    execution_options={"synchronize_session": False},
                )
            )

    # --- sending ----------------------------------------------------------------------------------

    def send_due(self, now: datetime | None = None) -> OutboxReport:
        """Send every due reply once (those that fail again in this run wait for the next), then return."""
        clock: Callable[[], datetime] = utcnow if now is None else _fixed_clock(now)
        report = OutboxReport()
        after_id = 0
        with Connections(self.app.plugins) as connections:
            while True:
                token, ids = self.claim(clock(), after_id)
                if not ids:
                    return report
                after_id = ids[-1]
                report.claimed += len(ids)
                try:
                    self._send_batch(token, ids, connections, clock, report)
                finally:
                    self.release(token, ids)

    def _send_batch(
        self,
        token: str,
        ids: Sequence[int],
        connections: Connections,
        clock: Callable[[], datetime],
        report: OutboxReport,
    ) -> None:
        claimed_at = time.monotonic()
        held = set(ids)
        with self._outcome_session() as session:
            rows = session.scalars(select(SMessageSendInfo).where(SMessageSendInfo.id.in_(ids))).all()
            raws = dict(
                session.execute(
                    select(MessageRaw.message_pk, MessageRaw.raw).where(
                        MessageRaw.message_pk.in_([r.message_pk for r in rows])
                    )
                ).all()
            )
            session.commit()
            # Grouped by profile, so that each profile's server is talked to over one connection.
            for row in sorted(rows, key=lambda r: (r.media_profile_id or 0, r.id)):
                if time.monotonic() - claimed_at > self.lease.total_seconds() / 2:
                    held = self._renew(token, ids, clock())
                    claimed_at = time.monotonic()
                if row.id not in held:
                    continue  # the lease ran out and another sender took the row over
                profile = session.get(MediaProfile, row.media_profile_id) if row.media_profile_id else None
                outcome = self._attempt(session, row, raws.get(row.message_pk), profile, connections, clock())
                session.commit()  # each outcome on its own: a crash resends at most the mail in flight
                self._announce(row, outcome, report)
                if outcome.first_delivery and profile is not None:
                    raw = raws.get(row.message_pk)
                    if raw is not None and not connections.store_sent_copy(profile, raw):
                        report.copy_errors += 1

    @contextmanager
    def _outcome_session(self) -> Iterator[Session]:
        """A session on one connection for a whole batch, its outcomes committed one by one.

        On PostgreSQL those commits are asynchronous (``synchronous_commit off``): they do not wait
        for the WAL flush, and the worst a database crash can do is lose the last fraction of a
        second of outcomes, whose mails are then sent again after the lease, which at-least-once
        delivery allows. The claim itself is committed synchronously.
        """
        postgresql = is_postgresql(self.app.engine)
        with self.app.engine.connect() as connection:
            if postgresql:
                connection.exec_driver_sql("SET synchronous_commit TO OFF")
                connection.commit()
            try:
                with Session(bind=connection, expire_on_commit=False) as session:
                    yield session
            finally:
                if postgresql and not connection.invalidated:
                    connection.rollback()
                    connection.exec_driver_sql("RESET synchronous_commit")
                    connection.commit()

    def _attempt(
        self,
        session: Session,
        row: SMessageSendInfo,
        raw: bytes | None,
        profile: MediaProfile | None,
        connections: Connections,
        now: datetime,
    ) -> _Outcome:
        """Try to send one row and record the result on it (not yet committed)."""
        recipients: list[str] = json.loads(row.pending_recipients or "[]")
        row.attempts += 1
        outcome = _Outcome()
        try:
            if raw is None:
                raise _Internal(f"The raw bytes of outgoing message {row.message_pk} are missing.")
            sender = connections.sender(profile)
            report = sender.send(row.envelope_from or "", recipients, raw)
        except SendFailure as error:
            if profile is not None and error.kind != "protocol":
                connections.drop(profile.id)
            if error.per_recipient:
                outcome.failures = [
                    _Failure(f, r, self._category(f, profile)) for r, f in error.per_recipient.items()
                ]
            else:
                outcome.failures = [_Failure(error, None, self._category(error, profile))]
        except UserError:
            raise  # a configuration problem (e.g. the secret key): stop the run, the claim is given back
        except Exception as error:  # a bug in postroom or a plugin: recorded, never retried blindly
            log.exception("sending outbox row %s failed unexpectedly", row.id)
            if profile is not None:
                connections.drop(profile.id)
            text = str(error) if isinstance(error, _Internal) else f"{type(error).__name__}: {error}"
            failure = SendFailure(f"Internal error while sending: {text}", kind="internal")
            outcome.failures = [_Failure(failure, None, ErrorCategory.INTERNAL)]
        else:
            outcome.failures = [_Failure(f, r, self._category(f, profile)) for r, f in report.refused.items()]
            outcome.delivered = [r for r in recipients if r not in report.refused]
        self._record(session, row, recipients, outcome, now)
        return outcome

    def _category(self, error: SendFailure, profile: MediaProfile | None) -> ErrorCategory:
        if isinstance(error, NoProvider) or profile is None:
            return ErrorCategory.NO_SUCH_PROVIDER
        try:
            category = self.app.plugins.classify_send_error(error, profile)
        except Exception:
            log.exception("the send-error classifier failed")
            return ErrorCategory.INTERNAL
        return ErrorCategory(category) if category is not None else ErrorCategory.UNIDENTIFIED

    def _record(
        self,
        session: Session,
        row: SMessageSendInfo,
        recipients: list[str],
        outcome: _Outcome,
        now: datetime,
    ) -> None:
        """Apply the policies to the failures and move the row to its next state."""
        if outcome.delivered:
            outcome.first_delivery = row.sent_at is None
            row.sent_at = row.sent_at or now
        settings = (
            retry_settings(session, row.media_profile_id)
            if outcome.failures and row.media_profile_id
            else None
        )
        pending: list[str] = []
        for failure in outcome.failures:
            failure.policy = failure.category.policy_name
            policy = self.app.plugins.policy(failure.policy)
            if policy is None:
                log.warning("retry policy %r is not installed or disabled: no retry", failure.policy)
            elif settings is not None:
                failure.retry_at = policy.next_attempt(row.attempts - 1, now, settings).retry_at
            session.add(
                FailedMessageSendInfo(
                    send_info_id=row.id,
                    attempt=row.attempts,
                    recipient=failure.recipient,
                    reply_code=failure.error.reply_code,
                    enhanced_code=parse_enhanced_status(failure.error.text),
                    text=failure.error.text[:TEXT_LIMIT],
                    category=failure.category.value,
                    policy=failure.policy,
                    next_attempt_at=failure.retry_at,
                    created_at=now,
                )
            )
            if failure.retry_at is not None:
                pending += recipients if failure.recipient is None else [failure.recipient]
        row.claim_expires_at = None
        if outcome.failures:
            first = outcome.failures[0]
            row.last_error = _describe(first)[:TEXT_LIMIT]
            row.category, row.policy = first.category.value, first.policy
        else:
            row.last_error = row.category = row.policy = None
        row.pending_recipients = json.dumps(list(dict.fromkeys(pending)))
        retry_times = [f.retry_at for f in outcome.failures if f.retry_at is not None]
        if pending and retry_times:
            # Recipients refused for different reasons wait for the latest of their policies'
            # times: no recipient is tried again sooner than its own policy allows.
            row.state, row.next_attempt_at = SendState.RETRY_SCHEDULED, max(retry_times)
        else:
            row.state = SendState.SENT if row.sent_at is not None else SendState.FAILED
            row.next_attempt_at = None
            if not outcome.failures:
                row.sent_at = now

    def _announce(self, row: SMessageSendInfo, outcome: _Outcome, report: OutboxReport) -> None:
        """The signals of one attempt, after its commit."""
        for failure in outcome.failures:
            events.send_failed.send(
                self,
                send_info_id=row.id,
                category=failure.category.value,
                policy=failure.policy,
                text=failure.error.text,
                recipients=[failure.recipient] if failure.recipient else [],
            )
        if row.state == SendState.RETRY_SCHEDULED:
            report.retry_scheduled += 1
            report.partial += bool(outcome.delivered)
            events.retry_scheduled.send(
                self,
                send_info_id=row.id,
                next_attempt_at=row.next_attempt_at,
                policy=row.policy,
                attempt=row.attempts,
            )
        elif outcome.failures:
            report.failed += row.state == SendState.FAILED
            report.sent += row.state == SendState.SENT
            events.send_abandoned.send(
                self, send_info_id=row.id, category=row.category, policy=row.policy, attempts=row.attempts
            )
        else:
            report.sent += 1
            events.send_succeeded.send(
                self, send_info_id=row.id, profile_id=row.media_profile_id, attempts=row.attempts
            )


def _describe(failure: _Failure) -> str:
    """``recipient: 550 5.1.1 text``: the failure as the outbox list shows it."""
    text, code = failure.error.text, failure.error.reply_code
    if code is not None and not text.startswith(str(code)):
        text = f"{code} {text}"
    return f"{failure.recipient}: {text}" if failure.recipient else text


def _fixed_clock(now: datetime) -> Callable[[], datetime]:
    return lambda: now


class _Internal(Exception):
    """Something postroom itself got wrong (missing data): an internal error, never retried."""


def send_due(
    app: Postroom, now: datetime | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> OutboxReport:
    """Send every due reply once: what ``postroom send`` and each cycle of the worker do."""
    return Outbox(app, batch_size=batch_size).send_due(now)
