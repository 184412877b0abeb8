"""The outbox: claim due replies, send them over one connection per profile, and record every outcome.

Delivery is at least once (docs/architecture.md, "At-least-once sending"): a claim is a lease, so
the rows of a sender that dies come back once it expires, and a crash between the server's 250
and the record of that outcome sends that mail again, with the same Message-ID. That is at most
one mail per crash: outcomes are recorded on a writer thread while the next mail's envelope is
exchanged, and the next message itself goes out only once the previous outcome is committed
(:class:`~postroom.core.outbound.writer.OutcomeWriter`). The rules an outcome follows are
:func:`~postroom.core.outbound.decision.decide`; the SQL is in :mod:`postroom.core.outbound.claims`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import SendFailure
from postroom.core.contract.retry import CATEGORY_POLICIES, ErrorCategory, RetryPolicy, RetrySettings
from postroom.core.data.configuration import retry_settings
from postroom.core.data.db import database_gone
from postroom.core.data.models import MediaProfile, SMessageSendInfo, utcnow
from postroom.core.data.retry_policies import policy_names_for_profile
from postroom.core.data.validation import BATCH_SIZE
from postroom.core.outbound import claims
from postroom.core.outbound.claims import ClaimedRow, worker_name
from postroom.core.outbound.classification import classify, internal_failure
from postroom.core.outbound.connections import Connections
from postroom.core.outbound.decision import ClaimedReply, Outcome, Transition, decide, internal_transition
from postroom.core.outbound.writer import OutcomeWriter
from postroom.core.plugin_host import PluginHost

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_BATCH_SIZE = 100


#: Built once (building ``claims.due`` anew each second cost more CPU than running it).
_ANYTHING_DUE = (
    select(SMessageSendInfo.id)
    .where(claims.due(cast(datetime, bindparam("now", type_=SMessageSendInfo.__table__.c.next_attempt_at.type))))
    .limit(1)
)


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

    def count(self, transition: Transition) -> None:
        """Count one recorded attempt."""
        if transition.counted == "sent":
            self.sent += 1
        elif transition.counted == "failed":
            self.failed += 1
        else:
            self.retry_scheduled += 1
        self.partial += transition.partial


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
        self.batch_size = BATCH_SIZE.check(batch_size)
        self.worker = worker or worker_name()
        self.should_stop = should_stop

    def anything_due(self, now: datetime | None = None) -> bool:
        """Whether :meth:`send_due` would find a row to claim now: one indexed query, nothing locked.

        The worker asks this every second before it runs ``send_due``: an idle ``send_due`` opens
        the writer's thread and connection, a session and the claim's transaction, which cost an
        idle worker about ten times this query's CPU (issue 16). A row that falls due right after
        the answer is sent on the next poll, as it would be had ``send_due`` run.
        """
        with self.app.engine.connect() as connection:
            return connection.scalar(_ANYTHING_DUE, {"now": now or utcnow()}) is not None

    def send_due(self, now: datetime | None = None) -> OutboxReport:
        """Send every due reply once (those that fail again in this run wait for the next), then return.

        One connection (the writer's) claims, loads and records for the whole run; the profiles
        are read once per run, in a session of their own.
        """
        clock: Callable[[], datetime] = utcnow if now is None else _fixed_clock(now)
        report = OutboxReport()
        record = _Recorder(self, self.app.plugins, report)
        after_id = 0
        with (
            Connections(self.app.plugins) as connections,
            self.app.sessions() as session,
            OutcomeWriter(self.app.engine) as writer,
        ):
            profiles = _Profiles(session)
            while not self.should_stop():
                token, ids = writer.run(
                    claims.claim,
                    clock(),
                    after_id,
                    worker=self.worker,
                    lease=self.lease,
                    batch_size=self.batch_size,
                )
                if not ids:
                    return report
                after_id = ids[-1]
                report.claimed += len(ids)
                try:
                    self._send_batch(token, ids, connections, profiles, writer, record, clock, report)
                except BaseException:
                    # A finished batch leaves no row of its claim unattempted; this one did.
                    writer.run_after_failure(claims.release, token, ids)
                    raise
        return report

    def _send_batch(
        self,
        token: str,
        ids: Sequence[int],
        connections: Connections,
        profiles: _Profiles,
        writer: OutcomeWriter,
        record: _Recorder,
        clock: Callable[[], datetime],
        report: OutboxReport,
    ) -> None:
        claimed_at = time.monotonic()
        held = set(ids)
        rows, sizes = writer.run(claims.load, ids)
        # Grouped by profile, so that each profile's server is talked to over one connection.
        ordered = sorted(rows, key=lambda r: (r.media_profile_id or 0, r.id))
        raws: dict[int, bytes] = {}
        for index, row in enumerate(ordered):
            if time.monotonic() - claimed_at > self.lease.total_seconds() / 2:
                held = writer.run(claims.renew, token, ids, clock(), self.lease)
                claimed_at = time.monotonic()
            if row.id not in held:
                continue  # the lease ran out and another sender took the row over
            if row.message_pk in sizes and row.message_pk not in raws:
                raws = writer.run(claims.load_raws, claims.next_chunk(ordered[index:], sizes))
            profile = profiles.get(row.media_profile_id)
            raw = raws.get(row.message_pk)
            reply = row.reply()
            now = clock()
            outcome = self._attempt(row, reply, raw, profile, connections, writer.wait)
            writer.submit(row.id, record, token, reply, outcome, now)
            # The sent copy is stored once, when the first recipients accept the mail.
            first_delivery = bool(outcome.delivered) and reply.sent_at is None
            copied = (
                not first_delivery
                or profile is None
                or raw is None
                or connections.store_sent_copy(profile, raw)
            )
            report.copy_errors += not copied

    def _attempt(
        self,
        row: ClaimedRow,
        reply: ClaimedReply,
        raw: bytes | None,
        profile: MediaProfile | None,
        connections: Connections,
        ready: Callable[[], None],
    ) -> Outcome:
        """Try to send one row: who got the mail and which failures (recorded on the writer's thread)."""
        plugins = self.app.plugins
        try:
            if raw is None:
                raise _Internal(f"The raw bytes of outgoing message {row.message_pk} are missing.")
            sender = connections.sender(profile)
            report = sender.send_when_ready(
                row.envelope_from or "", list(reply.pending_recipients), raw, ready
            )
        except SendFailure as error:
            if profile is not None and error.kind != "protocol":
                connections.drop(profile.id)
            return Outcome(failures=(classify(plugins, error, profile),))
        except UserError:
            # A configuration problem (e.g. the secret key), or the database failed while recording
            # the previous outcome: stop the run; the claim is given back.
            raise
        except Exception as error:  # a bug in postroom or a plugin: recorded, never retried blindly
            log.exception("sending outbox row %s failed unexpectedly", row.id)
            if profile is not None:
                connections.drop(profile.id)
            text = str(error) if isinstance(error, _Internal) else f"{type(error).__name__}: {error}"
            return Outcome(failures=(internal_failure(f"Internal error while sending: {text}"),))
        return Outcome(
            delivered=tuple(r for r in reply.pending_recipients if r not in report.refused),
            failures=tuple(classify(plugins, f, profile, r) for r, f in report.refused.items()),
        )


class _Recorder:
    """Records one attempt on the writer's thread: decide, write, commit; then count it and send its signals.

    A profile's retry settings and its category → policy table are read once per run: a dead
    server fails every queued reply of its profile, and each would otherwise read them again.
    """

    def __init__(self, outbox: Outbox, plugins: PluginHost, report: OutboxReport) -> None:
        self.outbox = outbox
        self.plugins = plugins
        self.report = report
        self._settings: dict[int, RetrySettings] = {}
        self._policy_names: dict[int, Mapping[ErrorCategory, str]] = {}

    def __call__(
        self, connection: Connection, token: str, reply: ClaimedReply, outcome: Outcome, now: datetime
    ) -> None:
        try:
            transition = self._decide(connection, reply, outcome, now)
            claims.write_transition(connection, token, reply.id, transition)
            connection.commit()
        except Exception as error:
            if database_gone(error):
                raise  # nothing can be recorded: the run stops and gives its claim back
            # One bad reply (a policy that raises, a date out of range, a value the database
            # refuses) must not stop the others: it ends failed, or sent if a recipient already
            # got it, and is never tried again, so nothing is lost and nothing sent twice.
            log.exception("deciding or recording the outcome of outbox row %s failed", reply.id)
            connection.rollback()
            transition = internal_transition(reply, outcome, error, now)
            claims.write_transition(connection, token, reply.id, transition)
            connection.commit()
        self.report.count(transition)
        for signal in transition.signals:
            events.send_now(signal.signal, self.outbox, **signal.kwargs)

    def _decide(
        self, connection: Connection, reply: ClaimedReply, outcome: Outcome, now: datetime
    ) -> Transition:
        settings = None
        policy_names: Mapping[ErrorCategory, str] = CATEGORY_POLICIES
        if outcome.failures and reply.profile_id:
            if reply.profile_id not in self._settings:
                self._settings[reply.profile_id] = retry_settings(connection, reply.profile_id)
                self._policy_names[reply.profile_id] = policy_names_for_profile(connection, reply.profile_id)
            settings = self._settings[reply.profile_id]
            policy_names = self._policy_names[reply.profile_id]
        return decide(reply, outcome, settings, policy_names=policy_names, find_policy=self._policy, now=now)

    def _policy(self, name: str) -> RetryPolicy | None:
        policy = self.plugins.policy(name)
        if policy is None:
            log.warning("retry policy %r is not installed or disabled: no retry", name)
        return policy


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


def _fixed_clock(now: datetime) -> Callable[[], datetime]:
    return lambda: now


class _Internal(Exception):
    """Something postroom itself got wrong (missing data): an internal error, never retried."""


def send_due(
    app: Postroom, now: datetime | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> OutboxReport:
    """Send every due reply once: what ``postroom send`` and each cycle of the worker do."""
    return Outbox(app, batch_size=batch_size).send_due(now)
