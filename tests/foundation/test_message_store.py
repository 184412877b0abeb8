"""Storing a message: values fitted to their columns as the model declares them, raw bytes and each address
kept once; the inbound queries and the re-route of held mail called directly, as the command line calls them."""

from __future__ import annotations

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data import directory, profiles, rules
from postroom.core.data.columns import fit, width
from postroom.core.data.messages import MailToStore, new_message, store_messages
from postroom.core.data.models import (
    Customer,
    Direction,
    FailedMessageSendInfo,
    Message,
    MessageAddress,
    MessageRaw,
    MessageStatus,
    Ticket,
)
from postroom.core.data.profiles import ProfileFields
from postroom.core.inbound.pipeline import InboundPipeline
from postroom.core.inbound.queries import held_mail_as_json
from postroom.core.inbound.reroute import reroute_held


def test_a_value_is_cut_to_the_width_its_column_declares_and_unbounded_text_stays_whole() -> None:
    assert (width(Message.message_id), width(Ticket.normalised_subject), width(Customer.name)) == (
        998,
        512,
        255,
    )
    assert fit(Message.message_id, "m" * 1200) == "m" * 998
    assert fit(Customer.name, "n" * 300) == "n" * 255
    # Text columns capped in the model: a plugin's error, a server's reply.
    assert fit(Message.reason, "r" * 3000) == "r" * 2000
    assert fit(FailedMessageSendInfo.text, "t" * 5000) == "t" * 4000
    subject = "s" * 10_000
    assert width(Message.subject) is None
    assert fit(Message.subject, subject) is subject
    assert fit(Message.message_id, None) is None
    assert fit(Message.message_id, "") == ""


def test_a_stored_message_keeps_its_bytes_its_fitted_fields_and_each_address_once(app: Postroom) -> None:
    raw = b"From: Ann <ann@example.org>\r\nSubject: Hello\r\n\r\n" + bytes(range(256)) * 64
    with app.transaction() as session:
        message = new_message(
            contact_center_id=1,
            direction=Direction.INBOUND,
            status=MessageStatus.UNROUTED,
            message_id="m" * 1200,
            from_address="a" * 300,
            subject="Hello " * 1000,
        )
        addresses = [
            ("from", "Ann@Example.org"),
            ("to", "desk@acme.test"),
            ("to", "DESK@acme.test"),
            ("cc", "ann@example.org"),
        ]
        store_messages(session, [MailToStore(message, raw, addresses)])
        pk = message.id
    with app.sessions() as session:
        stored = session.get(Message, pk)
        assert stored is not None
        assert (stored.message_id, stored.from_address) == ("m" * 998, "a" * 255)
        assert stored.subject == "Hello " * 1000
        assert session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == pk)) == raw
        rows = session.execute(
            select(MessageAddress.role, MessageAddress.address)
            .where(MessageAddress.message_pk == pk)
            .order_by(MessageAddress.id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("from", "ann@example.org"),
        ("to", "desk@acme.test"),
        ("cc", "ann@example.org"),
    ]


def test_held_mail_is_listed_by_its_query_and_routed_by_reroute_held_once_a_rule_exists(
    app: Postroom,
) -> None:
    with app.transaction() as session:
        profile = profiles.create_profile(session, app.plugins, 1, "support", ProfileFields())
        InboundPipeline(session, app.plugins, profile).store(
            "key-1",
            b"From: Ann <ann@example.org>\r\nTo: support@acme.test\r\nSubject: Where is my parcel?\r\n"
            b"Message-ID: <parcel-1@example.org>\r\n\r\nIt has not arrived.\r\n",
        )
    with app.transaction() as session:
        held = held_mail_as_json(session, 1, MessageStatus.UNROUTED)
    assert [(h["profile"], h["from"], h["subject"]) for h in held] == [
        ("support", "ann@example.org", "Where is my parcel?")
    ]
    assert held[0]["reason"] == "No routing rule of profile 'support' matches this mail."
    assert reroute_held(app, "support", 1) == 0

    with app.transaction() as session:
        campaign = directory.add_campaign(session, 1, "Support")
        queue = directory.add_queue(session, campaign, "First line")
        rules.add_rule(session, profiles.get_profile(session, "support", 1), campaign, queue)
        listed = rules.rules_as_json(session, 1)
    assert [(r["profile"], r["campaign"], r["queue"], r["enabled"]) for r in listed] == [
        ("support", "Support", "First line", True)
    ]
    assert reroute_held(app, "support", 1) == 1
    with app.transaction() as session:
        assert held_mail_as_json(session, 1, MessageStatus.UNROUTED) == []
        assert session.scalar(select(Message.status).where(Message.message_id == "parcel-1@example.org")) == (
            MessageStatus.TICKETED
        )
