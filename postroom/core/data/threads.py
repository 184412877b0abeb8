"""Which ticket a mail thread is on, for a whole fetch batch at once.

:func:`postroom.core.data.tickets.ticket_of_thread` asks the database once per reply. A fetch batch
instead loads, in one query, the stored messages its mails refer to (``In-Reply-To`` and
``References``) with their tickets, and records each of its own mails as it lands on a ticket, so a
reply to an earlier mail of the same batch finds that mail's ticket too, even one not yet inserted.
The answer is the same as ``ticket_of_thread``'s: the ticket of the newest (highest id) message
among the given Message-IDs; a question about an id the batch did not load goes to the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.models import Message, Ticket
from postroom.core.data.tickets import THREAD_IDS, ticket_of_thread

#: Message-IDs per query (a batch of 100 mails with long References asks about a few hundred).
CHUNK = 500


def thread_ids(message_ids: Iterable[str | None]) -> list[str]:
    """The ids ``ticket_of_thread`` looks at: each once, empty ones left out, at most ``THREAD_IDS``."""
    return [m for m in dict.fromkeys(message_ids) if m][:THREAD_IDS]


class ThreadIndex:
    """The tickets of the threads a batch's mails refer to, loaded on the first question."""

    def __init__(self, session: Session, contact_center_id: int, threads: Iterable[Iterable[str | None]]) -> None:
        self.session = session
        self.contact_center_id = contact_center_id
        #: Every Message-ID the batch's mails name; what the index can answer for.
        self.wanted = {m for ids in threads for m in ids if m}
        #: Message-ID -> (primary key, ticket) of the newest message with it that is on a ticket.
        self._newest: dict[str, tuple[int, Ticket]] | None = None
        if not self.wanted:
            self._newest = {}

    def load(self) -> None:
        """Read the stored messages the batch's mails name, with their tickets (one query per 500 ids)."""
        if self._newest is None:
            self._newest = self._read()

    def _read(self) -> dict[str, tuple[int, Ticket]]:
        newest: dict[str, tuple[int, Ticket]] = {}
        wanted = sorted(self.wanted)
        for start in range(0, len(wanted), CHUNK):
            rows = self.session.execute(
                select(Message.message_id, Message.id, Ticket)
                .join(Ticket, Ticket.id == Message.ticket_id)
                .where(
                    Message.message_id.in_(wanted[start : start + CHUNK]),
                    Message.contact_center_id == self.contact_center_id,
                )
            )
            for message_id, pk, ticket in rows:
                if message_id is not None and (message_id not in newest or newest[message_id][0] < pk):
                    newest[message_id] = (pk, ticket)
        return newest

    def ticket_of(self, message_ids: Sequence[str]) -> Ticket | None:
        """The ticket of the newest message, stored or of this batch, among ``message_ids``."""
        ids = thread_ids(message_ids)
        if not ids:
            return None
        if not self.wanted.issuperset(ids):
            return ticket_of_thread(self.session, self.contact_center_id, ids)
        if self._newest is None:
            self._newest = self._read()
        found = [self._newest[m] for m in ids if m in self._newest]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def record(self, message: Message, ticket: Ticket) -> None:
        """``message``, of this batch (newer than every stored one), is now on ``ticket``."""
        if self._newest is not None and message.message_id and message.message_id in self.wanted:
            self._newest[message.message_id] = (message.id, ticket)
