"""The fetch cycle of one profile: list, skip what the ledger knows, download in batches, store, acknowledge.

Store before acknowledge: each batch's raw bytes, ledger rows and tickets are committed before
any of its mails is deleted on the server, so a crash anywhere neither loses nor doubles a mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import Mailbox, MailRef, ProtocolError
from postroom.core.data.db import is_outage
from postroom.core.data.models import FetchLedger, LedgerOutcome, MediaProfile, ProfileStatus, utcnow
from postroom.core.data.profiles import get_profile
from postroom.core.data.protocol_state import save_state
from postroom.core.data.validation import DEFAULT_PARSE_TIME_LIMIT, FETCH_LAST_DAYS, PARSE_TIME_LIMIT
from postroom.core.inbound.cycle_config import CycleConfigs, read_profile
from postroom.core.inbound.outcome import CycleEnd, record_outcome
from postroom.core.inbound.pipeline import InboundPipeline, StoreResult

log = logging.getLogger(__name__)

#: A batch holds at most this many mails and this many bytes (as the server announces sizes).
BATCH_MAILS = 100
BATCH_BYTES = 16 * 1024 * 1024
LEDGER_LOOKUP_CHUNK = 500

#: Called with (mails just handled, mails to handle in this cycle).
Progress = Callable[[int, int], None]


#: Called with the cycle's session and outcome just before the commit that ends the cycle, in place
#: of :func:`record_outcome`: it must write ``end.values`` on the profile's row, and may add its own
#: writes to that transaction. The worker writes the outcome, gives the lease back and schedules
#: the next fetch in one UPDATE (``core/worker/leases.py``), so an empty cycle is one transaction.
Finish = Callable[[Session, CycleEnd], None]


@dataclass
class FetchReport:
    """What one fetch cycle of one profile did."""

    profile: str
    listed: int = 0
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    deleted: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The document ``fetch --json`` prints for this profile."""
        return asdict(self)


def _batches(refs: Sequence[MailRef], most_mails: int, most_bytes: int) -> Iterator[list[MailRef]]:
    """Consecutive batches of at most ``most_mails`` mails and (where sizes are known) ``most_bytes``."""
    batch: list[MailRef] = []
    size = 0
    for ref in refs:
        if batch and (len(batch) >= most_mails or size + (ref.size or 0) > most_bytes):
            yield batch
            batch, size = [], 0
        batch.append(ref)
        size += ref.size or 0
    if batch:
        yield batch


def _known_keys(session: Session, profile_id: int, keys: Sequence[str]) -> dict[str, LedgerOutcome]:
    """Ledger outcome of each listed key the ledger already holds (one indexed query per chunk)."""
    known: dict[str, LedgerOutcome] = {}
    for start in range(0, len(keys), LEDGER_LOOKUP_CHUNK):
        chunk = keys[start : start + LEDGER_LOOKUP_CHUNK]
        rows = session.execute(
            select(FetchLedger.mailbox_key, FetchLedger.outcome).where(
                FetchLedger.media_profile_id == profile_id, FetchLedger.mailbox_key.in_(chunk)
            )
        )
        known.update({key: LedgerOutcome(outcome) for key, outcome in rows})
    return known


class Fetcher:
    """Runs fetch cycles; one instance may serve many profiles and cycles."""

    def __init__(
        self,
        app: Postroom,
        batch_mails: int = BATCH_MAILS,
        batch_bytes: int = BATCH_BYTES,
        should_stop: Callable[[], bool] | None = None,
        parse_time_limit: float = DEFAULT_PARSE_TIME_LIMIT,
    ) -> None:
        if batch_mails < 1:
            raise UserError(f"A fetch batch must hold at least one mail, not {batch_mails}.")
        self.app = app
        #: Seconds one mail may take to parse before it is quarantined (``core/mail/time_limit.py``).
        self.parse_time_limit = PARSE_TIME_LIMIT.check(parse_time_limit)
        #: Profile id -> mailbox keys known to be in its fetch ledger. Ledger rows are never removed,
        #: so a worker that lists a big mailbox kept on the server every cycle asks the database
        #: only about keys it has not seen before.
        self._ledger_keys: dict[int, set[str]] = {}
        #: Each profile's plugin class and settings, rebuilt when its row changes (cycle_config.py).
        self.configs = CycleConfigs()
        #: Asked between batches: a worker told to stop ends the cycle after the batch in hand.
        self.should_stop = should_stop or (lambda: False)
        self.batch_mails = batch_mails
        self.batch_bytes = batch_bytes

    def fetch_profile(
        self, profile_id: int, progress: Progress | None = None, finish: Finish | None = None
    ) -> FetchReport:
        """One cycle for one profile; a server failure marks the profile in error and is reported.

        A cycle that finds nothing new runs in one transaction of two statements: the profile's
        row and protocol state are read with one query (``cycle_config.read_profile``), the
        mailbox listed, and the outcome (and ``finish``'s writes) committed at once. The ORM
        profile is loaded only when its settings must be built, or when there is mail to store.
        """
        with self.app.sessions() as session:
            row = read_profile(session, profile_id)
            if row is None or row.deleted_at is not None:
                self.configs.forget(profile_id)
                raise UserError(f"There is no media profile {profile_id}.")
            report = FetchReport(row.name)
            end = CycleEnd(row.id, row.name, row.fetch_interval)
            try:
                plugin, settings = self.configs.get(session, row, self.app.plugins)
                end.can_wait = bool(plugin.CAN_WAIT_FOR_MAIL)
                if row.sync_state is not None:
                    settings = replace(settings, sync_state=row.sync_state)
                with plugin.open_mailbox(settings) as mailbox:
                    self._cycle(session, row, mailbox, report, progress)
            except ProtocolError as error:
                session.rollback()
                report.error = str(error)
                self._mark_error(session, row, end, str(error), error.kind, finish)
                return report
            except UserError as error:
                session.rollback()
                report.error = str(error)
                self._mark_error(session, row, end, str(error), "protocol", finish)
                return report
            except Exception as error:  # a bug must not stop the other profiles
                if is_outage(error):
                    raise  # the database is gone: the worker's outage log, or the command, says so once
                log.exception("fetch of profile %s failed", row.name)
                session.rollback()
                report.error = f"Internal error while fetching: {type(error).__name__}: {error}"
                self._mark_error(session, row, end, report.error, "internal", finish)
                return report
            self._mark_ok(session, row, end, finish)
        return report

    def _cycle(
        self,
        session: Session,
        row: Row[Any],
        mailbox: Mailbox,
        report: FetchReport,
        progress: Progress | None,
    ) -> None:
        days = FETCH_LAST_DAYS.clamp(row.fetch_last_days or 0, f"profile {row.name!r}")
        since = date.today() - timedelta(days=days) if days else None
        refs = mailbox.list_mail(since)
        report.listed = len(refs)
        ledger = self._ledger_keys.setdefault(row.id, set())
        # Only what is still on the server needs remembering: the set never outgrows the mailbox.
        ledger.intersection_update(r.key for r in refs)
        ledger.update(_known_keys(session, row.id, [r.key for r in refs if r.key not in ledger]))
        known = [r.key for r in refs if r.key in ledger]
        new = [r for r in refs if r.key not in ledger]
        if new or (row.delete_on_fetch and known):
            # End the read transaction before the server is written to: each batch below is its own.
            # With nothing to do it stays open, and the outcome is committed in it (one transaction).
            session.commit()
            if not self._store_new(session, row, mailbox, known, new, report, progress):
                return  # told to stop: the protocol's state stays, the next cycle lists the rest again
        # Everything listed is stored (and acknowledged): only now may the protocol's cursor move on.
        # It is committed with the cycle's outcome (``_mark_ok``), after every batch's own commit.
        state = mailbox.sync_state()
        if state is not None and state != row.sync_state:
            save_state(session, row.id, row.fetch_protocol, state)

    def _store_new(
        self,
        session: Session,
        row: Row[Any],
        mailbox: Mailbox,
        known: list[str],
        new: list[MailRef],
        report: FetchReport,
        progress: Progress | None,
    ) -> bool:
        """Acknowledge what an earlier cycle stored, then download, store and acknowledge what is new.

        Returns False if the worker was told to stop before every batch was stored.
        """
        profile = session.get(MediaProfile, row.id)  # the pipeline works on the loaded profile
        if profile is None:
            raise UserError(f"There is no media profile {row.id}.")
        ledger = self._ledger_keys.setdefault(row.id, set())
        if profile.delete_on_fetch and known:
            # Stored by an earlier cycle that stopped before it could delete them on the server.
            self._acknowledge(session, profile, mailbox, known, report)
        unsized = [r.key for r in new if r.size is None]
        if unsized:
            sizes = mailbox.sizes(unsized)
            new = [r if r.size is not None else MailRef(r.key, sizes.get(r.key)) for r in new]
        for batch in _batches(new, self.batch_mails, self.batch_bytes):
            if self.should_stop():
                return False
            stored_keys = self._store_batch(session, profile, mailbox, batch, report)
            ledger.update(stored_keys)  # committed: the ledger holds them now
            if progress is not None:
                progress(len(batch), len(new))
            if profile.delete_on_fetch and stored_keys:
                self._acknowledge(session, profile, mailbox, stored_keys, report)
        return True

    def _acknowledge(
        self, session: Session, profile: MediaProfile, mailbox: Mailbox, keys: list[str], report: FetchReport
    ) -> None:
        """Delete mails on the server that the ledger already holds (committed), then note it there.

        A crash between the two leaves ``deleted_at`` empty; the next cycle deletes them again,
        which is harmless because the server no longer has them or still has them unchanged.
        """
        mailbox.delete(keys)
        report.deleted += len(keys)
        for start in range(0, len(keys), LEDGER_LOOKUP_CHUNK):
            session.execute(
                update(FetchLedger)
                .where(
                    FetchLedger.media_profile_id == profile.id,
                    FetchLedger.mailbox_key.in_(keys[start : start + LEDGER_LOOKUP_CHUNK]),
                )
                .values(deleted_at=utcnow())
            )
        session.commit()

    def _store_batch(
        self,
        session: Session,
        profile: MediaProfile,
        mailbox: Mailbox,
        batch: list[MailRef],
        report: FetchReport,
    ) -> list[str]:
        """Download and store one batch in one transaction; returns the keys now safely in the ledger."""
        downloaded: list[tuple[str, bytes]] = []
        for mail in mailbox.fetch([r.key for r in batch]):
            report.fetched += 1
            events.send_now(events.message_fetched, self, profile_id=profile.id, mailbox_key=mail.key, size=len(mail.raw))
            downloaded.append((mail.key, mail.raw))
        with events.held():  # the batch's signals go out after its commit
            try:
                with events.held():  # and those of a batch the database refused, not at all
                    results = self._pipeline(session, profile).store_batch(downloaded)
            except (OperationalError, InterfaceError):
                raise  # the database itself is gone: the cycle stops, nothing was acknowledged
            except SQLAlchemyError:
                # One mail the database refuses must not block the mailbox for ever: store one by one.
                log.exception(
                    "profile %s: a batch could not be stored; storing its mails one by one", profile.name
                )
                session.rollback()
                results = [self._store_alone(session, profile, key, raw) for key, raw in downloaded]
            for result in results:
                if result.outcome == LedgerOutcome.DUPLICATE:
                    report.duplicates += 1
                elif result.outcome == LedgerOutcome.QUARANTINED:
                    report.quarantined += 1
                else:
                    report.stored += 1
            session.commit()
        # Let the batch's raw bytes go: only the profile (and its resolver list) stays in the session.
        keep = {id(profile), *(id(r) for r in profile.resolvers)}
        for instance in list(session):
            if id(instance) not in keep and instance in session:  # an expunge cascades to related rows
                session.expunge(instance)
        return [key for key, _raw in downloaded]

    def _pipeline(self, session: Session, profile: MediaProfile) -> InboundPipeline:
        return InboundPipeline(session, self.app.plugins, profile, self.parse_time_limit)

    def _store_alone(self, session: Session, profile: MediaProfile, key: str, raw: bytes) -> StoreResult:
        """Store one mail in a savepoint; if the database refuses it, quarantine it raw with the reason."""
        pipeline = self._pipeline(session, profile)
        try:
            with events.held(), session.begin_nested():
                return pipeline.store(key, raw)
        except (OperationalError, InterfaceError):
            raise
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            return pipeline.quarantine(key, raw, f"The database refused this mail: {reason}")

    def _mark_error(
        self,
        session: Session,
        row: Row[Any],
        end: CycleEnd,
        reason: str,
        kind: str,
        finish: Finish | None,
    ) -> None:
        end.values = {
            "status": ProfileStatus.ERROR.value,
            "last_error": reason,
            "consecutive_failures": row.consecutive_failures + 1,
            "last_fetch_at": utcnow(),
        }
        self._record(session, end, finish)
        session.commit()
        log.debug("profile %s: %s", row.name, reason)  # the caller reports it (fetch, the worker)
        events.send_now(events.profile_error, self, profile_id=row.id, reason=reason, kind=kind)

    def _mark_ok(self, session: Session, row: Row[Any], end: CycleEnd, finish: Finish | None) -> None:
        end.values = {
            "status": ProfileStatus.OK.value,
            "last_error": None,
            "consecutive_failures": 0,
            "last_fetch_at": utcnow(),
        }
        self._record(session, end, finish)
        session.commit()
        if row.status == ProfileStatus.ERROR:
            events.send_now(events.profile_recovered, self, profile_id=row.id)

    @staticmethod
    def _record(session: Session, end: CycleEnd, finish: Finish | None) -> None:
        if finish is not None:
            finish(session, end)
        else:
            record_outcome(session, end)


def fetchable_profiles(session: Session, contact_center_id: int | None = None) -> list[MediaProfile]:
    """The profiles that fetch mail (of one contact centre, or of all), in the order they were made."""
    query = select(MediaProfile).where(MediaProfile.can_fetch)
    if contact_center_id is not None:
        query = query.where(MediaProfile.contact_center_id == contact_center_id)
    return list(session.scalars(query.order_by(MediaProfile.id)))


def profiles_to_fetch(session: Session, contact_center_id: int, name: str | None = None) -> list[MediaProfile]:
    """What ``postroom fetch`` fetches: the named profile, which must fetch mail, or every one that does."""
    if name is None:
        return fetchable_profiles(session, contact_center_id)
    profile = get_profile(session, name, contact_center_id)
    if not profile.can_fetch:
        raise UserError(f"Profile {name!r} does not fetch mail: its incoming side is off.")
    return [profile]
