"""The order-number resolver, tested as its author would: with postroom.testing, no server."""

from __future__ import annotations

from postroom.testing import make_desk


def mail(sender: str, subject: str, body: str = "Hello") -> bytes:
    return f"From: {sender}\r\nTo: support@postroom.test\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def test_a_second_mail_naming_the_order_lands_on_the_orders_ticket() -> None:
    with make_desk(resolvers=["order-number", "case-id"]) as desk:
        first = desk.receive(mail("carla@example.org", "Where is order 123456?"))
        other = desk.receive(mail("dan@example.org", "Something else entirely"))
        again = desk.receive(
            mail("warehouse@example.net", "Re: parcel", "About Order #123456: it left today.")
        )
        assert first is not None and other is not None and again is not None
        assert desk.attributes(first, "order-number") == {"order": "123456"}
        assert again.id == first.id
        assert other.id != first.id


def test_a_closed_orders_ticket_is_not_reopened_by_the_next_mail() -> None:
    with make_desk(resolvers=["order-number"]) as desk:
        first = desk.receive(mail("carla@example.org", "order 777777"))
        assert first is not None
        with desk.app.transaction() as session:
            from postroom.core.data.models import Ticket

            ticket = session.get(Ticket, first.id)
            assert ticket is not None
            ticket.state = "closed"
        again = desk.receive(mail("carla@example.org", "order 777777 again"))
        assert again is not None and again.id != first.id
        assert desk.attributes(again, "order-number") == {"order": "777777"}
