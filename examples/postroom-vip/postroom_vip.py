"""A postroom plugin for VIP customers: an inbound filter, a router, a compose hook and a command.

- The **inbound filter** tags mail from a VIP domain ``vip`` and holds newsletters (mail carrying a
  ``List-Unsubscribe`` header from a ``news@``/``newsletter@`` address): stored, never put on a ticket.
- The **router** sends VIP mail to the queue ``Priority`` of the campaign ``VIP`` when the contact
  centre has one; otherwise it passes and the profile's routing rules decide.
- The **compose hook** marks replies on VIP tickets ``Importance: high`` and adds a direct line.
- The **command** ``postroom vip check ADDRESS`` says whether an address counts as VIP.

The VIP domains are ``$POSTROOM_VIP_DOMAINS`` (comma-separated), by default ``vip.example``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click
from sqlalchemy import select

from postroom import InboundVerdict, OutgoingDraft, ParsedMail, RouteChoice, hookimpl
from postroom.core.data.models import Campaign, MediaProfile, Queue, Ticket

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DIRECT_LINE = "Your direct line: +49 30 1234 5678"
NEWSLETTER_SENDERS = {"news", "newsletter"}


def vip_domains() -> set[str]:
    configured = os.environ.get("POSTROOM_VIP_DOMAINS", "vip.example")
    return {domain.strip().lower() for domain in configured.split(",") if domain.strip()}


def is_vip(address: str | None) -> bool:
    return address is not None and address.rpartition("@")[2].lower() in vip_domains()


@hookimpl
def postroom_inbound_filter(message: ParsedMail, profile: MediaProfile) -> InboundVerdict | None:
    sender = (message.from_address or "").partition("@")[0].lower()
    if message.header("List-Unsubscribe") and sender in NEWSLETTER_SENDERS:
        return InboundVerdict(hold=True, reason="A newsletter, not a customer's mail.")
    if is_vip(message.from_address):
        return InboundVerdict(tags=["vip"])
    return None


@hookimpl(tryfirst=True)
def postroom_route_message(
    message: ParsedMail, profile: MediaProfile, session: Session
) -> RouteChoice | None:
    if not is_vip(message.from_address):
        return None
    found = session.execute(
        select(Campaign.id, Queue.id)
        .join(Queue, Queue.campaign_id == Campaign.id)
        .where(
            Campaign.contact_center_id == profile.contact_center_id,
            Campaign.name == "VIP",
            Queue.name == "Priority",
        )
    ).first()
    return RouteChoice(campaign_id=found[0], queue_id=found[1]) if found else None


@hookimpl
def postroom_compose_outgoing(draft: OutgoingDraft, ticket: Ticket, profile: MediaProfile) -> None:
    if draft.campaign == "VIP":
        draft.headers["Importance"] = "high"
        draft.text = f"{draft.text}\n\n{DIRECT_LINE}"
        draft.html = f"{draft.html}<p>{DIRECT_LINE}</p>"


@hookimpl
def postroom_register_commands(cli: click.Group) -> None:
    @cli.group("vip")
    def vip() -> None:
        """VIP customers (the postroom-vip plugin)."""

    @vip.command("check")
    @click.argument("address")
    def check(address: str) -> None:
        """Say whether ADDRESS counts as a VIP customer."""
        click.echo(f"{address} is {'a VIP' if is_vip(address) else 'not a VIP'}.")
