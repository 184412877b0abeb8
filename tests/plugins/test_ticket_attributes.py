"""Plugin data: indexed ticket attributes a plugin keeps and finds an open ticket by (issue 12).

Exercised through the order-number resolver of ``examples/postroom-order-number`` (installed by the
test command) on the real inbound pipeline, and through the functions ``postroom`` exports, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

import postroom
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue
from postroom.core.data.models import Ticket, TicketAttribute
from postroom.core.data.tickets import close_ticket, create_ticket, merge_tickets
from tests.support.desk import Desk
from tests.support.mail import make_mail

PLUGIN = "order-number"


def attributes(app: Postroom, ticket_id: int) -> dict[str, str]:
    with app.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        return postroom.ticket_attributes(session, ticket, PLUGIN)


def test_a_resolver_stores_the_order_number_and_the_next_mail_naming_it_finds_the_ticket(
    app: Postroom,
) -> None:
    desk = Desk(app, resolvers=["order-number", "customer"]).setup()
    profile = desk.profile("other", resolvers=["customer"])
    first = desk.ticket(1, make_mail("Order 4711001 has not arrived", sender="Carla <carla@example.org>"))
    unrelated = desk.ticket(1, make_mail("A question", sender="Dan <dan@example.org>"))
    # A colleague of Carla's, another address, another subject: only the order number ties it.
    again = desk.ticket(
        1, make_mail("Parcel", sender="Eve <eve@example.net>", body="Re order #4711001: any news?")
    )
    assert attributes(app, first) == {"order": "4711001"}
    assert again == first and unrelated != first
    assert attributes(app, unrelated) == {}
    # A profile that does not use the resolver neither keeps nor finds order numbers.
    elsewhere = desk.ticket(profile, make_mail("Order 4711001", sender="Zoe <zoe@example.org>"))
    assert elsewhere != first and attributes(app, elsewhere) == {}


def test_the_index_on_plugin_name_and_value_exists(app: Postroom) -> None:
    indexes = inspect(app.engine).get_indexes("ticket_attribute")
    assert ["plugin", "name", "value"] in [index["column_names"] for index in indexes]


def test_finding_by_attribute_follows_merges_skips_closed_tickets_and_keeps_to_its_contact_centre_and_campaign(
    app: Postroom,
) -> None:
    with app.transaction() as session:
        campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Orders")
        other_campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Returns")
        queue = add_queue(session, campaign, "First line")

        def ticket(campaign_id: int) -> Ticket:
            return create_ticket(
                session,
                contact_center_id=DEFAULT_CONTACT_CENTER_ID,
                campaign_id=campaign_id,
                queue_id=queue.id,
                customer_id=None,
                profile=None,
                subject="Order",
            )

        merged, target, closed, returns = (
            ticket(campaign.id),
            ticket(campaign.id),
            ticket(campaign.id),
            ticket(other_campaign.id),
        )
        postroom.set_ticket_attribute(session, merged, PLUGIN, "order", "1")
        postroom.set_ticket_attribute(session, closed, PLUGIN, "order", "2")
        postroom.set_ticket_attribute(session, returns, PLUGIN, "order", "3")
        postroom.set_ticket_attribute(session, returns, "another-plugin", "order", "1")
        merge_tickets(session, merged, target)
        close_ticket(session, closed)

        def find(value: str, campaign_id: int | None = campaign.id, plugin: str = PLUGIN) -> int | None:
            found = postroom.find_open_ticket_by_attribute(
                session,
                plugin,
                "order",
                value,
                contact_center_id=DEFAULT_CONTACT_CENTER_ID,
                campaign_id=campaign_id,
            )
            return found.id if found else None

        assert find("1") == target.id
        assert find("2") is None
        assert (find("3"), find("3", campaign_id=None)) == (None, returns.id)
        assert find("1", campaign_id=other_campaign.id, plugin="another-plugin") == returns.id
        assert (
            postroom.find_open_ticket_by_attribute(
                session, PLUGIN, "order", "3", contact_center_id=DEFAULT_CONTACT_CENTER_ID + 1
            )
            is None
        )

        postroom.set_ticket_attribute(session, returns, PLUGIN, "order", "4")  # replaces, one row per name
        assert postroom.get_ticket_attribute(session, returns, PLUGIN, "order") == "4"
        assert postroom.delete_ticket_attribute(session, returns, PLUGIN, "order") is True
        assert postroom.ticket_attributes(session, returns, PLUGIN) == {}
        assert session.scalars(
            select(TicketAttribute.value).where(TicketAttribute.ticket_id == returns.id)
        ).all() == ["1"]


@pytest.mark.parametrize(
    ("plugin", "name", "value", "message"),
    [
        ("", "order", "1", "A ticket attribute's plugin must be 1 to 64 characters, not ''."),
        (PLUGIN, "x" * 65, "1", "A ticket attribute's attribute name must be 1 to 64 characters"),
        (PLUGIN, "order", "9" * 256, "A ticket attribute's value must be text of at most 255 characters."),
    ],
)
def test_a_plugins_bad_key_or_value_is_refused_in_one_sentence_never_cut(
    app: Postroom, plugin: str, name: str, value: str, message: str
) -> None:
    with app.transaction() as session:
        campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Orders")
        ticket = create_ticket(
            session,
            contact_center_id=DEFAULT_CONTACT_CENTER_ID,
            campaign_id=campaign.id,
            queue_id=None,
            customer_id=None,
            profile=None,
            subject="Order",
        )
        with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
            postroom.set_ticket_attribute(session, ticket, plugin, name, value)
