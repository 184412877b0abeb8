"""Whom a reply goes to: the answered mail's Reply-To or sender and its other recipients, each checked
(an address no mail server can take is skipped and named), or the recipients an agent chose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import UserError
from postroom.core.data.messages import stored_addresses
from postroom.core.data.models import CustomerEmail, Message, Ticket
from postroom.core.mail.addresses import address_problem


@dataclass(frozen=True)
class Skipped:
    """An address the reply leaves out, where it came from (the answered mail's header, or the customer
    record), and why no mail server can take it."""

    address: str
    role: str
    reason: str

    @property
    def sentence(self) -> str:
        return f"Skipped {self.address!r} ({self.role}): {self.reason}."

    def as_json(self) -> dict[str, str]:
        return {"address": self.address, "role": self.role, "reason": self.reason}


@dataclass(frozen=True)
class Recipients:
    """Whom a reply goes to, and the answered mail's addresses it leaves out as unusable."""

    to: list[str]
    cc: list[str]
    skipped: list[Skipped]


def reply_recipients(session: Session, ticket: Ticket, answered: Message | None, own: set[str]) -> Recipients:
    """To: the customer (the answered mail's Reply-To, else its sender); Cc: whoever else it went to, minus us.

    An address no mail server can take is left out (and said so); only when none is left is the reply
    refused. With no usable To address, the usable Cc addresses become the To.
    """
    seen = set(own)
    skipped: list[Skipped] = []

    def usable(addresses: Sequence[str], role: str) -> list[str]:
        kept = []
        for address in addresses:
            if address.lower() in seen:
                continue
            seen.add(address.lower())
            problem = address_problem(address)
            if problem:
                skipped.append(Skipped(address, role, problem))
            else:
                kept.append(address)
        return kept

    to: list[str] = []
    cc: list[str] = []
    if answered is not None:
        to = usable(stored_addresses(answered.reply_to), "Reply-To")
        if not to and answered.from_address:
            to = usable([answered.from_address], "From")
        cc = usable(stored_addresses(answered.to_addresses), "To") + usable(
            stored_addresses(answered.cc_addresses), "Cc"
        )
    if not to and ticket.customer_id is not None:
        first = session.scalar(
            select(CustomerEmail.address)
            .where(CustomerEmail.customer_id == ticket.customer_id)
            .order_by(CustomerEmail.id)
            .limit(1)
        )
        to = usable([first], "customer record") if first else []
    if not to:
        to, cc = cc, []
    if not to:
        why = "; ".join(f"{s.address!r} ({s.role}) cannot be used: {s.reason}" for s in skipped)
        raise UserError(
            f"Ticket {ticket.id} has no usable address to reply to{': ' + why if why else ''}; "
            "choose one with --to."
        )
    return Recipients(to, cc, skipped)


def chosen_recipients(to: Sequence[str], cc: Sequence[str]) -> Recipients:
    """The recipients an agent chose instead of the computed ones, each checked; at least one To."""
    for role, addresses in (("To", to), ("Cc", cc)):
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise UserError(f"The chosen {role} address {address!r} cannot be sent to: {problem}.")
    if not to:
        raise UserError("Choosing the recipients needs at least one To address.")
    return Recipients(list(dict.fromkeys(to)), [a for a in dict.fromkeys(cc) if a not in to], [])
