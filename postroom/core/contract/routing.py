"""What inbound filters may say about a mail, and where routing sends it: the types of the inbound hooks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InboundVerdict:
    """An inbound filter's opinion of a mail (hook ``postroom_inbound_filter``).

    ``auto_reply`` marks mail that nothing automatic may answer; ``hold`` keeps the mail stored
    but out of routing, with ``reason``; ``tags`` are added to the stored message.
    """

    tags: list[str] = field(default_factory=list)
    auto_reply: bool = False
    hold: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class RouteChoice:
    """Where a mail goes (hook ``postroom_route_message``): a campaign and, optionally, a queue."""

    campaign_id: int
    queue_id: int | None = None
    rule_id: int | None = None
