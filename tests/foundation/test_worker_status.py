"""``core/data/worker_status.py`` (the console's worker page): workers are known by the live leases and
send claims they hold; expired ones do not count; IDLE is said per protocol and switch."""

from __future__ import annotations

from datetime import timedelta

from postroom.core.app import Postroom
from postroom.core.data.idle_switch import set_idle
from postroom.core.data.models import MediaProfile, SendState, SMessageSendInfo, utcnow
from postroom.core.data.worker_status import worker_status
from postroom.core.outbound.compose import queue_reply
from tests.support.desk import Desk

IMAP = {
    "fetch_protocol": "imap",
    "incoming_allowed": True,
    "incoming_host": "127.0.0.1",
    "username": "u",
    "password": "p",
}


def test_live_leases_and_claims_name_the_workers_and_idle_is_said_per_protocol(app: Postroom) -> None:
    desk = Desk(app)
    watched = desk.profile(
        "watched", send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=2525, **IMAP
    )
    stale = desk.profile("stale", **IMAP)
    desk.profile("polled", **{**IMAP, "fetch_protocol": "pop3"})
    reply_id = queue_reply(app, 1, desk.ticket(watched), "Answer.").send_info_id
    now = utcnow()
    with app.transaction() as session:
        for profile_id, owner, until in (
            (watched, "a:1", now + timedelta(minutes=1)),
            (stale, "b:2", now - timedelta(minutes=1)),
        ):
            profile = session.get(MediaProfile, profile_id)
            assert profile is not None
            profile.lease_owner, profile.lease_expires_at = owner, until
        stale_profile = session.get(MediaProfile, stale)
        assert stale_profile is not None
        set_idle(session, stale_profile, False)
        row = session.get(SMessageSendInfo, reply_id)
        assert row is not None
        row.state, row.claimed_by, row.claim_expires_at = (
            SendState.SENDING,
            "c:3/ab12cd34",
            now + timedelta(minutes=5),
        )
    with app.transaction() as session:
        status = worker_status(session, app.plugins, 1, now)
    assert [(w["name"], w["profiles"], w["sending"]) for w in status["workers"]] == [
        ("a:1", ["watched"], 0),
        ("c:3", [], 1),
    ]
    shown = {p["name"]: (p["lease_owner"], p["idle"], p["watched"]) for p in status["profiles"]}
    assert shown == {
        "watched": ("a:1", "on", True),
        "stale": (None, "off", False),
        "polled": (None, "not offered", False),
    }
