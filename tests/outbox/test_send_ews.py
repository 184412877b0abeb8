"""A reply sent through an ``ews`` profile, against the loopback Exchange stand-in.

No Exchange server can run here: the stand-in answers the EWS operations exchangelib sends (see
tests/servers/ews_responder.py); it shows what postroom asks Exchange to do, not Exchange itself.
"""

from __future__ import annotations

import uuid

import pytest

from postroom.core.app import Postroom
from postroom.core.data.models import SendState
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import Outbox
from tests.outbox.helpers import NOW, failure_rows, outbox_rows, parse
from tests.servers.ews_responder import EwsStandIn
from tests.support.desk import CUSTOMER, Desk

PASSWORD = "ews-pw-7"


@pytest.fixture
def ews_user(ews_server: EwsStandIn) -> str:
    address = f"desk-{uuid.uuid4().hex[:8]}@example.test"
    ews_server.add_user(address, PASSWORD)
    return address


def _ews_profile(desk: Desk, ews_server: EwsStandIn, user: str) -> int:
    return desk.profile(
        "exchange",
        send_protocol="ews",
        outgoing_host=ews_server.endpoint,
        username=user,
        password=PASSWORD,
        send_from_name="Exchange Desk",
        send_from_address=user,
    )


def test_reply_goes_out_through_ews_and_exchange_keeps_the_sent_copy(
    app: Postroom, ews_server: EwsStandIn, ews_user: str
) -> None:
    desk = Desk(app)
    profile_id = _ews_profile(desk, ews_server, ews_user)
    queued = queue_reply(app, 1, desk.ticket(profile_id, to=ews_user), "Sent by Exchange.", now=NOW)

    report = Outbox(app).send_due(NOW)

    assert (report.sent, report.copy_errors) == (1, 0)
    [sent] = ews_server.sent(ews_user)
    assert parse(sent.raw)["Message-ID"] == f"<{queued.message_id}>"
    assert sent.recipients == [CUSTOMER] and sent.saved_copy
    assert [row.state for row in outbox_rows(app)] == [SendState.SENT]


@pytest.mark.parametrize(
    ("code", "category", "state"),
    [
        ("ErrorInvalidRecipients", "addressing error", SendState.FAILED),
        ("ErrorQuotaExceeded", "mailbox error", SendState.RETRY_SCHEDULED),
    ],
)
def test_a_send_exchange_refuses_is_classified_by_its_response_code(
    app: Postroom, ews_server: EwsStandIn, ews_user: str, code: str, category: str, state: SendState
) -> None:
    desk = Desk(app)
    profile_id = _ews_profile(desk, ews_server, ews_user)
    queue_reply(app, 1, desk.ticket(profile_id, to=ews_user), "Hi.", now=NOW)
    ews_server.refuse(CUSTOMER, code)

    Outbox(app).send_due(NOW)

    [failure] = failure_rows(app)
    assert (failure.attempt, failure.category) == (1, category)
    assert code in (failure.text or "")
    assert outbox_rows(app)[0].state == state
