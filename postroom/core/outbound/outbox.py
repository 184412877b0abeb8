"""The outbox: claim due replies, send them over one connection per profile, and record every outcome.

Delivery is at least once (docs/architecture.md, "At-least-once sending"): a claim is a lease, so the rows of a sender that dies come
back once it expires, and a crash between the server's 250 and the record of that outcome sends
that mail again, with the same Message-ID. That is at most one mail per crash: outcomes are
recorded on a writer thread while the next mail's envelope is exchanged, and the next message
itself goes out only once the previous outcome is committed (:class:`_OutcomeWriter`). On
PostgreSQL, claims use ``FOR UPDATE SKIP LOCKED``, so several senders never claim one row twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import SendFailure
from postroom.core.contract.retry import ErrorCategory, RetrySettings
from postroom.core.data.configuration import retry_settings
from postroom.core.data.db import is_postgresql
from postroom.core.data.models import (
    FailedMessageSendInfo,
    MediaProfile,
    MessageRaw,
    SendState,
    SMessageSendInfo,
    utcnow,
)
from postroom.core.outbound.connections import Connections, NoProvider
from postroom.core.outbound.status_codes import parse_enhanced_status

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_BATCH_SIZE = 100
#: The most bytes of queued mails a sender reads at once (see :func:`_next_chunk`).
RAW_CHUNK_BYTES = 16 * 1024 * 1024
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

    #: The recipients this attempt sent to (the row's pending ones).
    recipients: list[str]
    delivered: list[str] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    first_delivery: bool = False
    #: The ``failed_message_send_info`` rows of this attempt, one per failure.
    failure_rows: list[dict[str, Any]] = field(default_factory=list)


_ROW_COLUMNS = (
    "id",
    "message_pk",
    "media_profile_id",
    "envelope_from",
    "pending_recipients",
    "attempts",
    "sent_at",
)


@dataclass
class _Row:
    """The columns of one claimed ``s_message_send_info`` row that an attempt reads and writes."""

    id: int
    message_pk: int
    media_profile_id: int | None
    envelope_from: str | None
    pending_recipients: str
    attempts: int
    sent_at: datetime | None
    state: str = SendState.SENDING
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    category: str | None = None
    policy: str | None = None


_SEND_INFO = cast(Table, SMessageSendInfo.__table__)
_FAILED = cast(Table, FailedMessageSendInfo.__table__)
#: An outcome, written only while the writer's claim still holds the row (the SET clause comes from
#: the parameters' keys).
_OUTCOME_UPDATE = update(_SEND_INFO).where(
    _SEND_INFO.c.id == bindparam("row_id"), _SEND_INFO.c.claimed_by == bindparam("token")
)


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
    """Sends due replies; ``now`` fixes the clock (tests), else it is real time.

    ``should_stop`` is asked before each batch is claimed: the worker's shutdown finishes the
    batch in hand and leaves the rest queued for the next sender.
    """

    def __init__(
        self,
        app: Postroom,
        *,
        lease: timedelta = DEFAULT_LEASE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        worker: str | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.lease = lease
        self.batch_size = batch_size
        self.worker = worker or worker_name()
        self.should_stop = should_stop

    # --- claiming (on the writer's connection) ----------------------------------------------------

    def _claim(self, connection: Connection, now: datetime, after_id: int) -> tuple[str, list[int]]:
        """Claim up to a batch of due rows with ids above ``after_id``; return the claim and its ids.

        One UPDATE takes the rows, so SQLite's single writer never meets a stale read, and on
        PostgreSQL its subquery skips rows another sender has locked.
        """
        token = f"{self.worker}/{uuid.uuid4().hex[:8]}"
        row = _SEND_INFO.c
        candidates = select(row.id).where(due(now), row.id > after_id).order_by(row.id).limit(self.batch_size)
        if is_postgresql(self.app.engine):
            candidates = candidates.with_for_update(skip_locked=True)
        claimed = connection.scalars(
            update(_SEND_INFO)
            .where(row.id.in_(candidates.scalar_subquery()))
            .values(state=SendState.SENDING, claimed_by=token, claim_expires_at=now + self.lease)
            .returning(row.id)
        ).all()
        connection.commit()
        return token, sorted(claimed)

    @staticmethod
    def _load(connection: Connection, ids: Sequence[int]) -> tuple[list[_Row], dict[int, int]]:
        """The claimed rows, and the size of each one's mail (the bytes come in chunks, see :meth:`_load_raws`)."""
        rows = [
            _Row(**mapping)
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

    @staticmethod
    def _load_raws(connection: Connection, message_pks: Sequence[int]) -> dict[int, bytes]:
        raws = dict(
            connection.execute(
                select(MessageRaw.message_pk, MessageRaw.raw).where(MessageRaw.message_pk.in_(message_pks))
            ).all()
        )
        connection.commit()
        return raws

    @staticmethod
    def _release(connection: Connection, token: str, ids: Sequence[int]) -> None:
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

    def _renew(self, connection: Connection, token: str, ids: Sequence[int], now: datetime) -> set[int]:
        """Extend a claim's lease; the ids still held (another sender may have taken over expired ones)."""
        row = _SEND_INFO.c
        held = set(
            connection.scalars(
                update(_SEND_INFO)
                .where(row.id.in_(ids), row.claimed_by == token, row.state == SendState.SENDING)
                .values(claim_expires_at=now + self.lease)
                .returning(row.id)
            )
        )
        connection.commit()
        return held

    # --- sending ----------------------------------------------------------------------------------

    def send_due(self, now: datetime | None = None) -> OutboxReport:
        """Send every due reply once (those that fail again in this run wait for the next), then return.

        One connection (the writer's) claims, loads and records for the whole run; the profiles
        are read once per run, in a session of their own.
        """
        clock: Callable[[], datetime] = utcnow if now is None else _fixed_clock(now)
        report = OutboxReport()
        after_id = 0
        with (
            Connections(self.app.plugins) as connections,
            self.app.sessions() as session,
            _OutcomeWriter(self, report) as writer,
        ):
            profiles = _Profiles(session)
            while not self.should_stop():
                token, ids = writer.run(self._claim, clock(), after_id)
                if not ids:
                    return report
                after_id = ids[-1]
                report.claimed += len(ids)
                try:
                    self._send_batch(token, ids, connections, profiles, writer, clock, report)
                except BaseException:
                    # A finished batch leaves no row of its claim unattempted; this one did.
                    writer.run_after_failure(self._release, token, ids)
                    raise
        return report

    def _send_batch(
        self,
        token: str,
        ids: Sequence[int],
        connections: Connections,
        profiles: _Profiles,
        writer: _OutcomeWriter,
        clock: Callable[[], datetime],
        report: OutboxReport,
    ) -> None:
        claimed_at = time.monotonic()
        held = set(ids)
        rows, sizes = writer.run(self._load, ids)
        # Grouped by profile, so that each profile's server is talked to over one connection.
        ordered = sorted(rows, key=lambda r: (r.media_profile_id or 0, r.id))
        raws: dict[int, bytes] = {}
        for index, row in enumerate(ordered):
            if time.monotonic() - claimed_at > self.lease.total_seconds() / 2:
                held = writer.run(self._renew, token, ids, clock())
                claimed_at = time.monotonic()
            if row.id not in held:
                continue  # the lease ran out and another sender took the row over
            if row.message_pk in sizes and row.message_pk not in raws:
                raws = writer.run(self._load_raws, _next_chunk(ordered[index:], sizes))
            profile = profiles.get(row.media_profile_id)
            raw = raws.get(row.message_pk)
            now = clock()
            outcome = self._attempt(row, raw, profile, connections, writer.wait)
            writer.submit(token, row, outcome, now)
            copied = (
                not outcome.first_delivery
                or profile is None
                or raw is None
                or connections.store_sent_copy(profile, raw)
            )
            report.copy_errors += not copied

    def _attempt(
        self,
        row: _Row,
        raw: bytes | None,
        profile: MediaProfile | None,
        connections: Connections,
        ready: Callable[[], None],
    ) -> _Outcome:
        """Try to send one row: who got the mail and which failures (recorded by :class:`_OutcomeWriter`)."""
        outcome = _Outcome(recipients=json.loads(row.pending_recipients or "[]"))
        row.attempts += 1
        try:
            if raw is None:
                raise _Internal(f"The raw bytes of outgoing message {row.message_pk} are missing.")
            sender = connections.sender(profile)
            report = sender.send_when_ready(row.envelope_from or "", outcome.recipients, raw, ready)
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
            # A configuration problem (e.g. the secret key), or the database failed while recording
            # the previous outcome: stop the run; the claim is given back.
            raise
        except Exception as error:  # a bug in postroom or a plugin: recorded, never retried blindly
            log.exception("sending outbox row %s failed unexpectedly", row.id)
            if profile is not None:
                connections.drop(profile.id)
            text = str(error) if isinstance(error, _Internal) else f"{type(error).__name__}: {error}"
            failure = SendFailure(f"Internal error while sending: {text}", kind="internal")
            outcome.failures = [_Failure(failure, None, ErrorCategory.INTERNAL)]
        else:
            outcome.failures = [_Failure(f, r, self._category(f, profile)) for r, f in report.refused.items()]
            outcome.delivered = [r for r in outcome.recipients if r not in report.refused]
        outcome.first_delivery = bool(outcome.delivered) and row.sent_at is None
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
        connection: Connection,
        row: _Row,
        outcome: _Outcome,
        now: datetime,
        settings_by_profile: dict[int, RetrySettings],
    ) -> None:
        """Apply the policies to the failures and move the row to its next state.

        A profile's retry settings are read once per run (``settings_by_profile``): a dead server
        fails every queued reply of its profile, and each would otherwise read them again.
        """
        recipients = outcome.recipients
        if outcome.delivered:
            row.sent_at = row.sent_at or now
        settings = None
        if outcome.failures and row.media_profile_id:
            if row.media_profile_id not in settings_by_profile:
                settings_by_profile[row.media_profile_id] = retry_settings(connection, row.media_profile_id)
            settings = settings_by_profile[row.media_profile_id]
        pending: list[str] = []
        for failure in outcome.failures:
            failure.policy = failure.category.policy_name
            policy = self.app.plugins.policy(failure.policy)
            if policy is None:
                log.warning("retry policy %r is not installed or disabled: no retry", failure.policy)
            elif settings is not None:
                failure.retry_at = policy.next_attempt(row.attempts - 1, now, settings).retry_at
            outcome.failure_rows.append(
                {
                    "send_info_id": row.id,
                    "attempt": row.attempts,
                    "recipient": failure.recipient,
                    "reply_code": failure.error.reply_code,
                    "enhanced_code": parse_enhanced_status(failure.error.text),
                    "text": failure.error.text[:TEXT_LIMIT],
                    "category": failure.category.value,
                    "policy": failure.policy,
                    "next_attempt_at": failure.retry_at,
                    "created_at": now,
                }
            )
            if failure.retry_at is not None:
                pending += recipients if failure.recipient is None else [failure.recipient]
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

    @staticmethod
    def _write(connection: Connection, token: str, row: _Row, outcome: _Outcome) -> None:
        """The attempt's failures, then the row's new state, as Core statements.

        Core rather than the ORM's unit of work: this runs once per mail, and the ORM's change
        tracking cost more than the statement. The row is written only while this claim holds it.
        On PostgreSQL each statement commits on its own (see :func:`unsynced_connection`); the
        failures come first, so a crash between the two leaves a true record of an attempt and a
        row that is tried again after its lease.
        """
        if outcome.failure_rows:
            connection.execute(insert(_FAILED), outcome.failure_rows)
        connection.execute(
            _OUTCOME_UPDATE,
            {
                "row_id": row.id,
                "token": token,
                "state": row.state,
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at,
                "last_error": row.last_error,
                "category": row.category,
                "policy": row.policy,
                "pending_recipients": row.pending_recipients,
                "sent_at": row.sent_at,
                "claim_expires_at": None,
            },
        )

    def _announce(self, row: _Row, outcome: _Outcome, report: OutboxReport) -> None:
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


class OutcomeNotRecorded(UserError):
    """Recording an outcome failed (the database, or a signal receiver); the run stops, the cause is chained.

    A user error so that ``postroom send`` and the worker report it in one sentence: the cause is
    most often the database going away, which the operator has to see and fix.
    """


class _OutcomeWriter:
    """Records outcomes on a thread and connection of its own while the next mail is on its way.

    The outcome of mail N is written and committed while mail N+1's envelope is exchanged with
    the server, which hides the database's round trips behind the SMTP ones. At most one
    outcome is outstanding: :meth:`submit` waits for the previous one, and the sender calls
    :meth:`wait` (its ``ready``) right before the server can hold mail N+1. So, as without the
    thread, a sender killed at any moment leaves at most one delivered mail unrecorded.

    Claims, loads and lease renewals run here too (:meth:`run`), so one connection, an
    :func:`unsynced_connection`, serves the whole run. Signals are sent from this thread, after
    each commit.
    """

    def __init__(self, outbox: Outbox, report: OutboxReport) -> None:
        self.outbox = outbox
        self.report = report
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postroom-outcomes")
        self._resources = ExitStack()
        self._connection: Connection | None = None
        self._pending: tuple[int, Future[None]] | None = None
        self._retry_settings: dict[int, RetrySettings] = {}

    def __enter__(self) -> Self:
        try:
            # Opened on the writer's thread, so that the connection is only ever used there.
            self._connection = self._executor.submit(
                self._resources.enter_context, unsynced_connection(self.outbox.app.engine)
            ).result()
        except BaseException:
            self._executor.shutdown()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.wait()
        except OutcomeNotRecorded:
            if exc is None:
                raise
            log.exception("recording the last outcome failed as well")
        finally:
            self._executor.submit(self._resources.close).result()
            self._executor.shutdown()

    def run(self, function: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(connection, ...)`` on the writer's thread and connection, after the pending outcome."""
        self.wait()
        return self._executor.submit(partial(function, self._live_connection(), *args, **kwargs)).result()

    def run_after_failure(
        self, function: Callable[[Connection, str, Sequence[int]], None], *args: Any
    ) -> None:
        """Like :meth:`run` while another error is on its way: a failure here is logged, not raised."""
        try:
            with suppress(OutcomeNotRecorded):
                self.wait()  # already reported, or about to be, by the error on its way
            self._executor.submit(partial(function, self._live_connection(), *args)).result()
        except Exception:
            log.exception("giving back the claim failed; its rows come back when the lease expires")

    def _live_connection(self) -> Connection:
        assert self._connection is not None, "the writer is used outside its with block"
        return self._connection

    def submit(self, token: str, row: _Row, outcome: _Outcome, now: datetime) -> None:
        """Record ``outcome`` on the writer's thread, once the previous outcome is committed."""
        self.wait()
        self._pending = (row.id, self._executor.submit(self._write_outcome, token, row, outcome, now))

    def wait(self) -> None:
        """Return once every submitted outcome is committed; raise :class:`OutcomeNotRecorded` if one failed."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        row_id, future = pending
        try:
            future.result()
        except Exception as error:
            log.error("recording the outcome of outbox row %s failed", row_id, exc_info=error)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise OutcomeNotRecorded(
                f"Recording the outcome of outbox row {row_id} failed ({reason}); "
                "the run stopped and gave its unsent replies back."
            ) from error

    def _write_outcome(self, token: str, row: _Row, outcome: _Outcome, now: datetime) -> None:
        connection = self._live_connection()
        self.outbox._record(connection, row, outcome, now, self._retry_settings)
        self.outbox._write(connection, token, row, outcome)
        connection.commit()
        self.outbox._announce(row, outcome, self.report)


@contextmanager
def unsynced_connection(engine: Engine) -> Iterator[Connection]:
    """A connection whose commits do not wait for the disk: for the outbox's claims and outcomes.

    On PostgreSQL ``synchronous_commit`` is off, on SQLite (in WAL mode) ``synchronous`` is
    NORMAL. Either survives the sender being killed; only a crash of the database server or the
    machine can lose the last fraction of a second of commits. A lost claim or outcome puts its
    reply back in the queue, to be sent again after the lease, which at-least-once delivery
    allows; a claim still excludes every other sender while the database runs, durable or not.
    Waiting for the disk instead would cost more per mail than the SMTP transaction itself.

    On PostgreSQL the connection is also in autocommit mode: each statement is its own
    transaction, one round trip instead of three (BEGIN, statement, COMMIT), which on a busy
    machine is CPU the SMTP exchange needs. Every outbox statement is correct on its own.
    """
    postgresql = is_postgresql(engine)
    relaxed, strict = (
        ("SET synchronous_commit TO OFF", "RESET synchronous_commit")
        if postgresql
        else ("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL")
    )
    with engine.connect() as connection:
        if postgresql:
            connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(relaxed)
        connection.commit()
        try:
            yield connection
        finally:
            try:
                if not connection.invalidated:
                    connection.rollback()
                    connection.exec_driver_sql(strict)
                    connection.commit()
            except Exception:
                # Back in the pool it would make the next user's commits unsynced as well: an
                # inbound batch must be on disk before its mails leave the server. So it goes.
                log.warning("could not restore synchronous commits; dropping the connection", exc_info=True)
                connection.invalidate()


class _Profiles:
    """The outgoing profiles of one run, each read once, in a session that holds no transaction open."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._loaded: dict[int, MediaProfile | None] = {}

    def get(self, profile_id: int | None) -> MediaProfile | None:
        if profile_id is None:
            return None
        if profile_id not in self._loaded:
            self._loaded[profile_id] = self.session.get(MediaProfile, profile_id)
            self.session.commit()  # ends the read (SQLite keeps a snapshot while one is open)
        return self._loaded[profile_id]


def _next_chunk(rows: Sequence[_Row], sizes: dict[int, int]) -> list[int]:
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
