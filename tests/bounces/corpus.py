"""The bounce corpus (tests/bounces/corpus/): one failure mail per family the readers must know.

Each sample names the customer whose address failed for good (hard) and the addresses that failed
only for now (soft). :func:`land` stores a sample through the real inbound pipeline onto a fresh
open ticket of that customer and says where it landed; the test and ``scripts/bounce_families.py``
(the per-family table) both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.contract.bounces import BounceReport
from postroom.core.data import configuration, directory, tickets
from postroom.core.data.models import IcConfigurationParameter, Ticket, TicketState
from postroom.core.mail.bounces import read_bounce
from postroom.core.mail.parse import parse_mail
from tests.support.desk import Desk

CORPUS = Path(__file__).parent / "corpus"


@dataclass(frozen=True)
class Sample:
    family: str
    file: str
    hard: str
    soft: tuple[str, ...] = ()
    source: str = "sisimai"

    @property
    def raw(self) -> bytes:
        return (CORPUS / self.file).read_bytes()


SAMPLES: tuple[Sample, ...] = (
    Sample("sendmail V5 (plain text)", "sendmail-v5.eml", "kijitora@example.org"),
    Sample("OpenSMTPD", "opensmtpd.eml", "apdugoaidugoaidugoaeiudggadi@gmail.com"),
    Sample("Lotus Notes (ISO-2022-JP)", "lotus-notes.eml", "kijitora@u1.example.co.jp"),
    Sample("Lotus Domino", "lotus-domino.eml", "kijitora@example.jp"),
    Sample("Verizon", "verizon.eml", "may-be-straycat-nyaaaaaan@vtext.com"),
    Sample("EZweb (au by KDDI)", "ezweb.eml", "this-local-part-does-not-exist-on-the-server@ezweb.ne.jp"),
    Sample("Yahoo", "yahoo.eml", "kijitora@example.org"),
    Sample("Amazon WorkMail", "amazon-workmail.eml", "kijitora@example.jp"),
    Sample("Trend Micro InterScan MSS", "interscan.eml", "kijitora@example.co.jp"),
    Sample("MailMarshal", "mailmarshal.eml", "dummyuser@blabla.xxxxxxxxxxxx.com"),
    Sample("mFILTER", "mfilter.eml", "kijitora@example.co.jp"),
    Sample("Activehunter", "activehunter.eml", "kijitora@example.org"),
    Sample("Office 365, text and HTML only", "office365-text-html.eml", "kijitora@example.com"),
    Sample("AOL: DSN blocks without blank line", "aol-blocks-without-blank-line.eml", "mikeneko@example.jp",
           soft=("sabineko@example.jp",)),
    Sample("DSN, MIME boundary mismatch", "boundary-mismatch.eml", "gone.mismatch@example.net", source="written"),
    Sample("forwarded as message/rfc822", "forwarded-rfc822.eml", "nobody.fwd@example.com", source="written"),
    Sample("forwarded as quoted text", "forwarded-quoted.eml", "dead.quoted@example.jp", source="written"),
)


@dataclass
class Landing:
    """Where a sample landed and what the readers made of it."""

    sample: Sample
    report: BounceReport | None
    readers: list[str]
    customer_ticket: int
    landed_on: int | None
    escalated: bool
    is_failure_mail: bool

    @property
    def right(self) -> bool:
        return self.landed_on == self.customer_ticket and self.escalated and self.is_failure_mail


def _fresh_ticket(app: Postroom, desk: Desk, address: str) -> int:
    """Close the customer's open tickets and open a new one, so that a landing proves itself."""
    with app.transaction() as session:
        customer = directory.find_customer_by_address(session, 1, address) or directory.add_customer(
            session, 1, address, [address]
        )
        for ticket in session.scalars(
            select(Ticket).where(Ticket.customer_id == customer.id, Ticket.state == TicketState.OPEN)
        ):
            tickets.close_ticket(session, ticket)
        return tickets.create_ticket(
            session, contact_center_id=1, campaign_id=desk.campaign_id, queue_id=desk.queue_id,
            customer_id=customer.id, profile=None, subject=f"Question from {address}",
        ).id


def configure_sender(app: Postroom, raw: bytes) -> None:
    """Make the sample's sender a failure-mail address (as an operator does for their MTAs)."""
    sender = parse_mail(raw).from_address
    with app.transaction() as session:
        known = session.scalar(
            select(IcConfigurationParameter).where(
                IcConfigurationParameter.name == "failureMailConfiguration",
                IcConfigurationParameter.value == sender,
            )
        )
        if sender and known is None:
            configuration.add_value(session, 1, "failureMailConfiguration", sender)


def land(app: Postroom, desk: Desk, sample: Sample) -> Landing:
    """Store ``sample`` through the inbound pipeline of profile ``support``; where did it land?"""
    customer_ticket = _fresh_ticket(app, desk, sample.hard)
    for address in sample.soft:
        _fresh_ticket(app, desk, address)
    configure_sender(app, sample.raw)
    reading = read_bounce(parse_mail(sample.raw), app.plugins.read_bounce)
    stored = desk.deliver(sample.raw)
    with app.transaction() as session:
        ticket = session.get(Ticket, stored.ticket_id) if stored.ticket_id else None
        return Landing(
            sample=sample,
            report=reading.merged,
            readers=[name for name, _ in reading.verdicts],
            customer_ticket=customer_ticket,
            landed_on=ticket.id if ticket else None,
            escalated=bool(ticket and ticket.escalated),
            is_failure_mail=stored.is_failure_mail,
        )
