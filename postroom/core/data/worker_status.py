"""What the workers are doing, as far as the database tells (the console's worker page): who holds which
fetch lease until when, each fetching profile's last and next fetch and its error, whether it may be
watched with IDLE, and the replies senders have claimed.

A worker leaves no row of its own: it is known by the leases and claims it holds (``host:pid``), so a
worker that holds nothing does not show, and one that died shows until its leases expire. A profile is
"watched" when its IDLE switch is on, its protocol can wait for mail, and a live lease holds it
between fetches (docs/architecture.md, "IDLE"): the worker's admin endpoint knows more, this needs
no network.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.configuration import config_generation
from postroom.core.data.idle_switch import idle_enabled
from postroom.core.data.models import MediaProfile, Message, SendState, SMessageSendInfo, utcnow
from postroom.core.plugin_host import PluginHost


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _idle(plugins: PluginHost, session: Session, profile: MediaProfile) -> str:
    protocol = plugins.protocol(profile.fetch_protocol)
    if protocol is None or not protocol.CAN_WAIT_FOR_MAIL:
        return "not offered"
    return "on" if idle_enabled(session, profile.id) else "off"


def worker_status(
    session: Session, plugins: PluginHost, contact_center_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Workers (by the leases and claims they hold), fetching profiles, and the configuration generation."""
    now = now or utcnow()
    fetching = list(
        session.scalars(
            select(MediaProfile)
            .where(MediaProfile.contact_center_id == contact_center_id, MediaProfile.can_fetch)
            .order_by(MediaProfile.name)
        )
    )
    workers: dict[str, dict[str, Any]] = defaultdict(lambda: {"profiles": [], "sending": 0, "until": None})
    profiles = []
    for profile in fetching:
        leased = profile.lease_owner is not None and profile.lease_expires_at is not None
        live = leased and profile.lease_expires_at is not None and profile.lease_expires_at > now
        idle = _idle(plugins, session, profile)
        if live and profile.lease_owner is not None:
            worker = workers[profile.lease_owner]
            worker["profiles"].append(profile.name)
            worker["until"] = max(filter(None, (worker["until"], profile.lease_expires_at)))
        profiles.append(
            {
                "name": profile.name,
                "protocol": profile.fetch_protocol,
                "status": profile.status,
                "last_error": profile.last_error,
                "consecutive_failures": profile.consecutive_failures,
                "last_fetch_at": _iso(profile.last_fetch_at),
                "next_fetch_at": _iso(profile.next_fetch_at),
                "lease_owner": profile.lease_owner if live else None,
                "lease_expires_at": _iso(profile.lease_expires_at) if live else None,
                "idle": idle,
                "watched": live and idle == "on" and profile.status == "ok",
            }
        )
    claims = session.execute(
        select(SMessageSendInfo.claimed_by, SMessageSendInfo.claim_expires_at)
        .join(Message, Message.id == SMessageSendInfo.message_pk)
        .where(
            Message.contact_center_id == contact_center_id,
            SMessageSendInfo.state == SendState.SENDING,
            SMessageSendInfo.claim_expires_at > now,
        )
    )
    for token, until in claims:
        owner = (token or "unknown").rsplit("/", 1)[0]  # a claim is "host:pid/RANDOM"
        workers[owner]["sending"] += 1
        workers[owner]["until"] = max(filter(None, (workers[owner]["until"], until)))
    return {
        "now": now.isoformat(),
        "generation": config_generation(session),
        "workers": [
            {"name": name, "profiles": w["profiles"], "sending": w["sending"], "until": _iso(w["until"])}
            for name, w in sorted(workers.items())
        ],
        "profiles": profiles,
    }
