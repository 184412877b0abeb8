"""Each resolver against a sequence of mails, with the expected grouping into tickets (docs/architecture.md, "Resolve").

A step is a mail (label, sender, subject, options, expected ticket) or an action on the ticket a
labelled mail is on (close, merge, split). "new" expects a new ticket; a label expects the
ticket that mail is on at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data import directory, tickets
from postroom.core.data.models import Direction, Message, MessageStatus, Ticket
from tests.support.desk import Desk
from tests.support.mail import make_mail

BOB, BOB_HOME, CAROL, DAVE, ERIN, FRANK = (
    "Bob <bob@a.test>",
    "Bob at home <bob@home.test>",
    "carol@b.test",
    "Dave <dave@corp.test>",
    "erin@corp.test",
    "frank@f.test",
)


@dataclass
class M:
    label: str
    sender: str
    subject: str
    expect: str
    cc: list[str] = field(default_factory=list)
    reply_to: str | None = None  # label (or outbound id) the mail answers
    profile: str | None = None


@dataclass
class Act:
    action: str  # close | merge | split | outbound
    label: str
    other: str | None = None


def run_sequence(desk: Desk, steps: list[M | Act]) -> None:
    ids: dict[str, str] = {}
    pks: dict[str, int] = {}

    def ticket_of(label: str) -> int:
        with desk.app.transaction() as session:
            message = session.get(Message, pks[label])
            assert message is not None and message.ticket_id is not None
            return message.ticket_id

    for step in steps:
        if isinstance(step, Act):
            with desk.app.transaction() as session:
                ticket = session.get(Ticket, ticket_of(step.label))
                assert ticket is not None
                if step.action == "close":
                    tickets.close_ticket(session, ticket)
                elif step.action == "merge":
                    target = session.get(Ticket, ticket_of(step.other or ""))
                    assert target is not None
                    tickets.merge_tickets(session, ticket, target)
                elif step.action == "split":
                    tickets.split_ticket(session, ticket, [pks[step.label]])
                elif step.action == "outbound":
                    # An agent's reply stored on the ticket (the outbox stores exactly this).
                    session.add(
                        Message(
                            contact_center_id=1,
                            ticket_id=ticket.id,
                            direction=Direction.OUTBOUND,
                            status=MessageStatus.OUTGOING,
                            message_id=step.other,
                            subject="Re: ...",
                            from_address="support@acme.test",
                        )
                    )
            continue
        subject = step.subject
        if "{token:" in subject:
            start = subject.index("{token:")
            label = subject[start + 7 : subject.index("}", start)]
            with desk.app.transaction() as session:
                token = session.get(Ticket, ticket_of(label)).case_token  # type: ignore[union-attr]
            subject = subject.replace(f"{{token:{label}}}", token or "")
        before = _ticket_ids(desk.app)
        reply_id = ids.get(step.reply_to, step.reply_to) if step.reply_to else None
        message = desk.deliver(
            make_mail(
                subject,
                sender=step.sender,
                cc=step.cc,
                in_reply_to=reply_id,
                references=[reply_id] if reply_id else None,
            ),
            profile_name=step.profile,
        )
        assert message.status == MessageStatus.TICKETED, message.reason
        ids[step.label], pks[step.label] = message.message_id or "", message.id
        got = ticket_of(step.label)
        if step.expect == "new":
            assert got not in before, f"{step.label}: expected a new ticket, got existing ticket {got}"
        else:
            assert got == ticket_of(step.expect), f"{step.label}: expected the ticket of {step.expect}"


def _ticket_ids(app: Postroom) -> set[int]:
    with app.transaction() as session:
        return set(session.scalars(select(Ticket.id)))


SEQUENCES: dict[str, list[Any]] = {
    "customer": [
        M("m1", BOB, "Order 1234 missing", "new"),
        M("m2", BOB_HOME, "Re: Order 1234 missing", "m1"),  # the customer's second address
        M("m3", CAROL, "Order 1234 missing", "new"),
        M("m4", BOB, "AW: [ACME] Totally different", "m1"),
        Act("close", "m1"),
        M("m5", BOB_HOME, "Fwd: Order 1234 missing", "new"),  # a closed ticket is no candidate
        M("m6", CAROL, "Hi again", "m3"),
        Act("merge", "m3", "m5"),
        M("m7", CAROL, "Another thing", "m5"),  # carol's merged ticket leads to where it was merged
        Act("split", "m6"),
        M("m8", CAROL, "And one more", "m6"),  # the split ticket is carol's most recent
    ],
    "customer-source-profile": [
        M("m1", BOB, "Hello", "new"),
        M("m2", BOB_HOME, "Other", "new", profile="sales"),
        M("m3", BOB, "Re: whatever", "m1"),
        M("m4", BOB_HOME, "x", "m2", profile="sales"),
        M("m5", CAROL, "Hello", "new"),
        Act("close", "m1"),
        M("m6", BOB_HOME, "Hello again", "new"),
        Act("merge", "m2", "m6"),
        M("m7", BOB, "via sales", "m6", profile="sales"),
        Act("split", "m7"),
        M("m8", BOB, "Re: via sales", "m7", profile="sales"),
    ],
    "subject": [
        M("m1", BOB, "Order 1234 missing", "new"),
        M("m2", CAROL, "RE: Order 1234 missing", "m1"),  # any customer
        M("m3", BOB_HOME, "AW: [ACME] order 1234   MISSING", "m1"),
        M("m4", BOB, "Invoice question", "new"),
        M("m5", DAVE, "WG: Fwd: Invoice question [#PR-999]", "m4"),
        Act("close", "m1"),
        M("m6", CAROL, "Re[2]: Order 1234 missing", "new"),
        Act("merge", "m4", "m6"),
        M("m7", ERIN, "Invoice question", "m6"),
        Act("split", "m7"),
        M("m8", BOB, "Re: Invoice question", "m7"),
    ],
    "subject-customer": [
        M("m1", BOB, "Order 1234", "new"),
        M("m2", CAROL, "Order 1234", "new"),
        M("m3", BOB_HOME, "Re: [ACME] Order 1234", "m1"),
        M("m4", CAROL, "SV: order 1234", "m2"),
        M("m5", BOB, "Other topic", "new"),
        Act("close", "m1"),
        M("m6", BOB, "Re: Order 1234", "new"),
        Act("merge", "m5", "m6"),
        M("m7", BOB_HOME, "Other topic", "m6"),
        Act("split", "m7"),
        M("m8", BOB, "Fw: Other topic", "m7"),
    ],
    "subject-profile-customer": [
        M("m1", BOB, "Order 1234", "new"),
        M("m2", BOB_HOME, "Re: Order 1234", "new", profile="sales"),
        M("m3", BOB, "AW: [ACME] Order 1234", "m1"),
        M("m4", CAROL, "Order 1234", "new"),
        M("m5", BOB, "Re: Order 1234", "m2", profile="sales"),
        Act("close", "m1"),
        M("m6", BOB, "Order 1234", "new"),
        Act("merge", "m2", "m6"),
        M("m7", BOB, "Order 1234", "m6", profile="sales"),
        Act("split", "m7"),
        M("m8", BOB_HOME, "Re: Order 1234", "m7", profile="sales"),
    ],
    "case-id": [
        M("m1", BOB, "Order 1234", "new"),
        M("m2", BOB_HOME, "Re: Order 1234", "m1", reply_to="m1"),
        M("m3", BOB, "Order 1234", "new"),  # same subject, no thread: a new thread
        Act("outbound", "m1", "reply-1@acme.test"),
        M("m4", CAROL, "Re: [ACME] Order 1234", "m1", reply_to="reply-1@acme.test"),  # answers our reply
        M("m5", DAVE, "Fwd: something {token:m3}", "m3"),  # the case token in the subject
        Act("close", "m3"),
        M("m6", BOB, "Re: Order 1234", "new", reply_to="m3"),  # its thread's ticket is closed
        Act("merge", "m1", "m6"),
        M("m7", BOB_HOME, "AW: Order 1234", "m6", reply_to="m2"),
        Act("split", "m7"),
        M("m8", BOB, "Re: AW: Order 1234", "m7", reply_to="m7"),  # the thread follows the split
    ],
    "observer-subject": [
        M("m1", BOB, "Order 1234", "new", cc=["dave@corp.test"]),
        M("m2", DAVE, "Re: Order 1234", "m1"),  # the observer answers
        M("m3", ERIN, "Re: Order 1234", "new"),  # erin was not in Cc
        M("m4", DAVE, "Other subject", "new"),
        M("m5", FRANK, "Order 1234", "new", cc=["Dave@Corp.test"]),
        M("m6", DAVE, "AW: [ACME] order 1234", "m5"),  # the most recently active of the two
        Act("close", "m5"),
        M("m7", DAVE, "Re: Order 1234", "m1"),
        Act("merge", "m1", "m3"),
        M("m8", DAVE, "Re: Order 1234", "m3"),  # follows the merge
        Act("split", "m8"),
        M("m9", DAVE, "Re: Order 1234", "m3"),  # dave's own split mail had no Cc of him
    ],
}


@pytest.mark.parametrize("resolver", sorted(SEQUENCES))
def test_resolver_groups_the_sequence_into_the_expected_tickets(app: Postroom, resolver: str) -> None:
    desk = Desk(app, [resolver]).setup()
    desk.add_profile("sales")
    with app.transaction() as session:
        directory.add_customer(session, 1, "Bob", ["bob@a.test", "bob@home.test"])
    run_sequence(desk, SEQUENCES[resolver])


@pytest.mark.parametrize(
    ("resolvers", "steps"),
    [
        (
            ["subject-customer", "customer"],
            [M("m1", BOB, "Order", "new"), M("m2", BOB, "Invoice", "m1"), M("m3", CAROL, "Order", "new")],
        ),
        (
            ["case-id", "subject"],
            [M("m1", BOB, "Order", "new"), M("m2", CAROL, "Re: Order", "m1"), M("m3", CAROL, "Other", "new")],
        ),
    ],
)
def test_second_resolver_decides_when_the_first_finds_nothing(
    app: Postroom, resolvers: list[str], steps: list[M]
) -> None:
    run_sequence(Desk(app, resolvers).setup(), steps)  # type: ignore[arg-type]


def test_without_resolvers_case_id_applies(app: Postroom) -> None:
    desk = Desk(app, []).setup()
    run_sequence(
        desk,
        [
            M("m1", BOB, "Order", "new"),
            M("m2", BOB, "Re: Order", "m1", reply_to="m1"),
            M("m3", BOB, "Order", "new"),
        ],
    )


def test_a_disabled_resolver_plugin_is_skipped(app: Postroom) -> None:
    desk = Desk(app, ["subject", "customer"]).setup()
    app.set_plugin_enabled("subject-resolvers", False)
    run_sequence(
        desk, [M("m1", BOB, "Order", "new"), M("m2", CAROL, "Order", "new"), M("m3", BOB, "Other", "m1")]
    )
