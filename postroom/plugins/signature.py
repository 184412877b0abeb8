"""The builtin signature: the outgoing profile's HTML signature, its placeholders filled, on every reply.

Placeholders are written in braces: ``{agent_name}``, ``{customer_name}``, ``{ticket_id}``,
``{campaign}``, ``{profile_name}``, ``{date}`` and ``{case_token}``. Values are HTML-escaped in the
HTML part; a placeholder this plugin does not know stays visible as written, so a typo shows up
in the sent mail instead of failing the reply. It runs first, so other plugins can change the result.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from postroom.core.contract.hooks import hookimpl
from postroom.core.data.models import MediaProfile, Ticket

if TYPE_CHECKING:
    from postroom.core.contract.drafts import OutgoingDraft

PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


def placeholder_values(draft: OutgoingDraft, ticket: Ticket) -> dict[str, str]:
    """What each known placeholder stands for in this reply (empty when unknown for this ticket)."""
    return {
        "agent_name": draft.agent_name or "",
        "customer_name": draft.customer_name or "",
        "ticket_id": str(ticket.id),
        "campaign": draft.campaign or "",
        "profile_name": draft.profile_name or "",
        "date": draft.date.strftime("%Y-%m-%d"),
        "case_token": draft.case_token or ticket.case_token or "",
    }


def fill_placeholders(template: str, values: dict[str, str], escape: Callable[[str], str] = str) -> str:
    """``template`` with each known ``{name}`` replaced by ``escape(value)``; unknown ones left as they are."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        return escape(values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(replace, template)


@hookimpl(tryfirst=True)
def postroom_compose_outgoing(draft: OutgoingDraft, ticket: Ticket, profile: MediaProfile) -> None:
    from postroom.core.mail.build import (
        html_to_text,  # composing imports it anyway; loading the plugin need not
    )

    if not profile.signature_html:
        return
    values = placeholder_values(draft, ticket)
    # The stored signature was sanitised on save; only the filled-in values are new, hence escaped.
    draft.signature_html = fill_placeholders(profile.signature_html, values, html.escape)
    draft.signature_text = fill_placeholders(html_to_text(profile.signature_html), values)
    draft.signature_position = profile.signature_position or "before"
