"""The inbound pipeline's entry: a downloaded batch parsed, de-duplicated and stored with its ledger rows.

Everything here runs inside the fetch transaction; the caller commits (and only then acknowledges
the mail on the server). Stored mail goes on to :mod:`postroom.core.inbound.process`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.mail import ParsedMail
from postroom.core.data.columns import fit
from postroom.core.data.messages import (
    MailToStore,
    address_column,
    address_roles,
    attachment_summary,
    new_message,
    store_messages,
)
from postroom.core.data.models import (
    Direction,
    FetchLedger,
    LedgerOutcome,
    MediaProfile,
    Message,
    MessageRaw,
    MessageStatus,
)
from postroom.core.data.validation import DEFAULT_PARSE_TIME_LIMIT, PARSE_TIME_LIMIT
from postroom.core.inbound.process import MailProcessor
from postroom.core.mail.identity import content_digest
from postroom.core.mail.parse import MailParseError, parse_mail
from postroom.core.mail.time_limit import TimeLimitExceeded, time_limit
from postroom.core.plugin_host import PluginHost

log = logging.getLogger(__name__)

#: A mail's identity for de-duplication: its Message-ID (fitted to the column) and content digest.
_Identity = tuple[str, str]


@dataclass
class StoreResult:
    outcome: LedgerOutcome
    message_pk: int | None = None


@dataclass
class _Entry:
    """One mail of a batch being stored: its new message, or (a duplicate) the message it repeats."""

    key: str
    raw: bytes
    parsed: ParsedMail | str  # the parsed mail, or why it could not be parsed
    message: Message | int  # a Message of this batch, or the primary key of an earlier one
    is_new: bool

    @property
    def message_pk(self) -> int:
        return self.message.id if isinstance(self.message, Message) else self.message

    def to_store(self) -> MailToStore:
        """The new message with its raw bytes and, for a parsed mail, its sender, To and Cc."""
        assert isinstance(self.message, Message)
        parsed = self.parsed
        if not isinstance(parsed, ParsedMail):
            return MailToStore(self.message, self.raw)
        return MailToStore(self.message, self.raw, address_roles(parsed.from_address, parsed.to, parsed.cc))


class InboundPipeline:
    """Stores and processes the mails of one profile within one session (one fetch batch)."""

    def __init__(
        self,
        session: Session,
        plugins: PluginHost,
        profile: MediaProfile,
        parse_time_limit: float = DEFAULT_PARSE_TIME_LIMIT,
    ) -> None:
        self.session = session
        self.plugins = plugins
        self.profile = profile
        #: Seconds one mail may take to parse; a mail that takes longer is quarantined.
        self.parse_time_limit = PARSE_TIME_LIMIT.check(parse_time_limit)

    @cached_property
    def processor(self) -> MailProcessor:
        return MailProcessor(self.session, self.plugins, self.profile)

    def store(self, mailbox_key: str, raw: bytes) -> StoreResult:
        """Store one fetched mail with its ledger row, then route and resolve it."""
        return self.store_batch([(mailbox_key, raw)])[0]

    def store_batch(self, mails: Sequence[tuple[str, bytes]]) -> list[StoreResult]:
        """Store a batch of fetched ``(mailbox key, raw)`` mails with their ledger rows; route and resolve each.

        Each mail is parsed once; one query finds the messages already stored with the batch's
        Message-IDs and one statement each writes the messages, their raw bytes, addresses and
        ledger rows. A mail is a duplicate (also within the batch) only when an earlier one has its
        Message-ID *and* its content digest (:mod:`postroom.core.mail.identity`): two different
        mails sharing a Message-ID are both stored, the same mail fetched twice is stored once.
        """
        parsed = [self._parse(key, raw) for key, raw in mails]
        identities: list[_Identity | None] = [
            (fit(Message.message_id, p.message_id), content_digest(raw))
            if isinstance(p, ParsedMail) and p.message_id
            else None
            for (_key, raw), p in zip(mails, parsed, strict=True)
        ]
        originals: dict[_Identity, Message | int] = dict(
            self._stored_identities({i[0] for i in identities if i})
        )
        entries: list[_Entry] = []
        for (key, raw), result, identity in zip(mails, parsed, identities, strict=True):
            original = originals.get(identity) if identity else None
            if original is not None:
                entries.append(_Entry(key, raw, result, original, is_new=False))
                continue
            message = (
                self._new_message(result) if isinstance(result, ParsedMail) else self._quarantined(result)
            )
            if identity:
                message.content_digest = identity[1]
                originals[identity] = message
            entries.append(_Entry(key, raw, result, message, is_new=True))
        new = [e for e in entries if e.is_new]
        store_messages(self.session, [e.to_store() for e in new])
        for entry in entries:
            self._announce(entry)
        self.processor.process_batch(
            [
                (e.message, e.parsed)
                for e in new
                if isinstance(e.message, Message) and isinstance(e.parsed, ParsedMail)
            ]
        )
        results = [self._outcome(e) for e in entries]
        self._insert_ledger(entries, results)
        return results

    def quarantine(self, mailbox_key: str, raw: bytes, reason: str) -> StoreResult:
        """Keep a mail raw and quarantined with ``reason``, with its ledger row; nothing is parsed."""
        entry = _Entry(mailbox_key, raw, reason, self._quarantined(reason), is_new=True)
        store_messages(self.session, [entry.to_store()])
        self._announce(entry)
        result = self._outcome(entry)
        self._insert_ledger([entry], [result])
        return result

    def _insert_ledger(self, entries: Sequence[_Entry], results: Sequence[StoreResult]) -> None:
        rows = [
            {
                "media_profile_id": self.profile.id,
                "mailbox_key": e.key,
                "outcome": r.outcome,
                "message_pk": r.message_pk,
            }
            for e, r in zip(entries, results, strict=True)
        ]
        self.session.execute(insert(FetchLedger), rows)

    def _parse(self, mailbox_key: str, raw: bytes) -> ParsedMail | str:
        """The parsed mail, or the reason it cannot be parsed (in time)."""
        try:
            with time_limit(self.parse_time_limit):
                return parse_mail(raw)
        except TimeLimitExceeded:
            log.warning(
                "profile %s: %s took longer than %g s to parse; quarantined",
                self.profile.name,
                mailbox_key,
                self.parse_time_limit,
            )
            return f"The mail took longer than the parse time limit of {self.parse_time_limit:g} s to read."
        except MailParseError as error:
            return str(error)
        except Exception as error:  # the parser must never stop a mailbox
            log.exception("parser failed on %s of profile %s", mailbox_key, self.profile.name)
            return f"The mail could not be parsed ({type(error).__name__})."

    def _stored_identities(self, message_ids: set[str]) -> dict[_Identity, int]:
        """(Message-ID, digest) -> first message of those stored as inbound mail of this profile.

        One indexed query by Message-ID; only a collision costs more, and only for a message stored
        before digests were recorded: its digest is computed from its raw bytes once and kept.
        """
        if not message_ids:
            return {}
        rows = self.session.execute(
            select(Message.message_id, Message.content_digest, func.min(Message.id))
            .where(
                Message.media_profile_id == self.profile.id,
                Message.message_id.in_(message_ids),
                Message.direction == Direction.INBOUND,
            )
            .group_by(Message.message_id, Message.content_digest)
        ).all()
        found: dict[_Identity, int] = {}
        for message_id, digest, pk in rows:
            if message_id and digest:
                found[(message_id, digest)] = min(pk, found.get((message_id, digest), pk))
        if any(message_id and not digest for message_id, digest, _pk in rows):
            for message_id, digest, pk in self._digests_of_older_rows(message_ids):
                found[(message_id, digest)] = min(pk, found.get((message_id, digest), pk))
        return found

    def _digests_of_older_rows(self, message_ids: set[str]) -> list[tuple[str, str, int]]:
        """Compute and record the digests of this profile's stored mails with these Message-IDs that lack one."""
        rows = self.session.execute(
            select(Message.id, Message.message_id, MessageRaw.raw)
            .join(MessageRaw, MessageRaw.message_pk == Message.id)
            .where(
                Message.media_profile_id == self.profile.id,
                Message.message_id.in_(message_ids),
                Message.direction == Direction.INBOUND,
                Message.content_digest.is_(None),
            )
        ).all()
        digests = [(message_id, content_digest(bytes(raw)), pk) for pk, message_id, raw in rows if message_id]
        if digests:
            self.session.execute(
                update(Message),
                [{"id": pk, "content_digest": digest} for _message_id, digest, pk in digests],
            )
        return digests

    def _announce(self, entry: _Entry) -> None:
        """Send the signal that says what became of a mail of the batch."""
        parsed, message = entry.parsed, entry.message
        if not entry.is_new:
            assert isinstance(parsed, ParsedMail) and parsed.message_id
            events.emit(
                events.message_duplicate,
                self,
                profile_id=self.profile.id,
                mailbox_key=entry.key,
                message_id=parsed.message_id,
            )
        elif isinstance(parsed, ParsedMail):
            events.emit(
                events.message_stored,
                self,
                profile_id=self.profile.id,
                message_pk=entry.message_pk,
                message_id=parsed.message_id,
                date=parsed.date,
            )
        else:
            assert isinstance(message, Message)
            events.emit(
                events.message_quarantined,
                self,
                profile_id=self.profile.id,
                message_pk=message.id,
                reason=message.reason,
            )

    @staticmethod
    def _outcome(entry: _Entry) -> StoreResult:
        """How a mail of the batch ended, once processed: a plugin that broke on it quarantined it."""
        if not entry.is_new:
            return StoreResult(LedgerOutcome.DUPLICATE, entry.message_pk)
        assert isinstance(entry.message, Message)
        quarantined = entry.message.status == MessageStatus.QUARANTINED
        return StoreResult(
            LedgerOutcome.QUARANTINED if quarantined else LedgerOutcome.STORED, entry.message_pk
        )

    def _quarantined(self, reason: str) -> Message:
        return new_message(
            contact_center_id=self.profile.contact_center_id,
            media_profile_id=self.profile.id,
            direction=Direction.INBOUND,
            status=MessageStatus.QUARANTINED,
            reason=reason,
        )

    def _new_message(self, parsed: ParsedMail) -> Message:
        return new_message(
            contact_center_id=self.profile.contact_center_id,
            media_profile_id=self.profile.id,
            direction=Direction.INBOUND,
            status=MessageStatus.UNROUTED,
            **parsed_fields(parsed),
        )


def parsed_fields(parsed: ParsedMail) -> dict[str, Any]:
    """The columns of a message row read from its parsed mail (also for a quarantined mail parsed again)."""
    return {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "reference_ids": " ".join(parsed.references) or None,
        "from_address": parsed.from_address,
        "from_name": parsed.from_name,
        "to_addresses": address_column(parsed.to),
        "cc_addresses": address_column(parsed.cc),
        "reply_to": address_column(parsed.reply_to) if parsed.reply_to else None,
        "subject": parsed.subject,
        "sent_date": parsed.date,
        "text_body": parsed.text,
        "html_body": parsed.html,
        "attachments": attachment_summary((a.name, a.content_type, a.size) for a in parsed.attachments),
    }
