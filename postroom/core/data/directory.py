"""Contact centres, campaigns, queues, agents and customers: creation, lookup and listing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import delete, insert, literal, select, true
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload

from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.columns import fit
from postroom.core.data.models import (
    Agent,
    Campaign,
    ContactCenter,
    Customer,
    CustomerEmail,
    MediaProfile,
    Queue,
    utcnow,
)
from postroom.core.data.profiles import get_profile
from postroom.core.data.validation import check_address, check_single_line

DEFAULT_CONTACT_CENTER_ID = 1


def ensure_default_contact_center(session: Session) -> ContactCenter:
    """Contact centre 1, created on first ``postroom init``."""
    center = session.get(ContactCenter, DEFAULT_CONTACT_CENTER_ID)
    if center is None:
        center = ContactCenter(id=DEFAULT_CONTACT_CENTER_ID, name="default")
        session.add(center)
        session.flush()
    return center


def check_contact_center(session: Session, contact_center_id: int) -> ContactCenter:
    center = session.get(ContactCenter, contact_center_id)
    if center is None:
        raise NotFoundError(f"There is no contact centre {contact_center_id}; run 'postroom init' first.")
    return center


def _name(value: str, what: str) -> str:
    value = check_single_line(value, f"{what} name").strip()
    if not value:
        raise UserError(f"A {what} needs a name.")
    return value


def add_campaign(session: Session, contact_center_id: int, name: str) -> Campaign:
    name = _name(name, "campaign")
    if session.scalar(
        select(Campaign.id).where(Campaign.contact_center_id == contact_center_id, Campaign.name == name)
    ):
        raise UserError(f"A campaign named {name!r} already exists.")
    campaign = Campaign(contact_center_id=contact_center_id, name=name)
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(session: Session, contact_center_id: int, name: str) -> Campaign:
    campaign = session.scalar(
        select(Campaign).where(Campaign.contact_center_id == contact_center_id, Campaign.name == name)
    )
    if campaign is None:
        raise NotFoundError(f"There is no campaign named {name!r}.")
    return campaign


def list_campaigns(session: Session, contact_center_id: int) -> list[Campaign]:
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.contact_center_id == contact_center_id)
            .options(selectinload(Campaign.queues), selectinload(Campaign.profiles))
            .order_by(Campaign.id)
        )
    )


def add_queue(session: Session, campaign: Campaign, name: str) -> Queue:
    name = _name(name, "queue")
    if session.scalar(select(Queue.id).where(Queue.campaign_id == campaign.id, Queue.name == name)):
        raise UserError(f"Campaign {campaign.name!r} already has a queue named {name!r}.")
    queue = Queue(campaign_id=campaign.id, name=name)
    session.add(queue)
    session.flush()
    return queue


def get_queue(session: Session, campaign: Campaign, name: str) -> Queue:
    queue = session.scalar(select(Queue).where(Queue.campaign_id == campaign.id, Queue.name == name))
    if queue is None:
        raise NotFoundError(f"Campaign {campaign.name!r} has no queue named {name!r}.")
    return queue


def list_queues(session: Session, contact_center_id: int) -> list[Queue]:
    return list(
        session.scalars(
            select(Queue)
            .join(Campaign)
            .where(Campaign.contact_center_id == contact_center_id)
            .options(selectinload(Queue.campaign), selectinload(Queue.profiles))
            .order_by(Queue.id)
        )
    )


def assign_profiles(
    session: Session, target: Campaign | Queue | Agent, contact_center_id: int, names: list[str]
) -> list[MediaProfile]:
    """Give a campaign, queue or agent the named profiles (in addition to those it has)."""
    profiles = [get_profile(session, n, contact_center_id) for n in names]
    for profile in profiles:
        if profile not in target.profiles:
            target.profiles.append(profile)
    session.flush()
    return profiles


def add_agent(session: Session, contact_center_id: int, name: str, email: str | None = None) -> Agent:
    name = _name(name, "agent")
    if session.scalar(
        select(Agent.id).where(Agent.contact_center_id == contact_center_id, Agent.name == name)
    ):
        raise UserError(f"An agent named {name!r} already exists.")
    agent = Agent(
        contact_center_id=contact_center_id,
        name=name,
        email=check_address(email, "agent email") if email else None,
    )
    session.add(agent)
    session.flush()
    return agent


def get_agent(session: Session, contact_center_id: int, name: str) -> Agent:
    agent = session.scalar(
        select(Agent).where(Agent.contact_center_id == contact_center_id, Agent.name == name)
    )
    if agent is None:
        raise NotFoundError(f"There is no agent named {name!r}.")
    return agent


def list_agents(session: Session, contact_center_id: int) -> list[Agent]:
    return list(
        session.scalars(
            select(Agent)
            .where(Agent.contact_center_id == contact_center_id)
            .options(selectinload(Agent.profiles))
            .order_by(Agent.id)
        )
    )


def normalise_address(address: str) -> str:
    return address.strip().lower()


def find_customer_by_address(session: Session, contact_center_id: int, address: str) -> Customer | None:
    """The customer owning ``address`` (any of their addresses), via the unique (centre, address) index."""
    return session.scalar(
        select(Customer)
        .join(CustomerEmail)
        .where(
            CustomerEmail.contact_center_id == contact_center_id,
            CustomerEmail.address == normalise_address(address),
        )
    )


def add_customer(session: Session, contact_center_id: int, name: str, emails: list[str]) -> Customer:
    name = _name(name, "customer")
    if not emails:
        raise UserError("A customer needs at least one email address.")
    addresses = [normalise_address(check_address(e, "customer email")) for e in emails]
    for address in addresses:
        if find_customer_by_address(session, contact_center_id, address) is not None:
            raise UserError(f"The address {address!r} already belongs to another customer.")
    customer = Customer(contact_center_id=contact_center_id, name=name)
    customer.emails = [
        CustomerEmail(contact_center_id=contact_center_id, address=a) for a in dict.fromkeys(addresses)
    ]
    session.add(customer)
    session.flush()
    return customer


def customers_by_address(
    session: Session, contact_center_id: int, addresses: list[str]
) -> dict[str, Customer]:
    """The customers owning any of these addresses, keyed by address (one indexed query)."""
    wanted = list(dict.fromkeys(normalise_address(a) for a in addresses if a))
    if not wanted:
        return {}
    rows = session.execute(
        select(CustomerEmail.address, Customer)
        .join(Customer, Customer.id == CustomerEmail.customer_id)
        .where(CustomerEmail.contact_center_id == contact_center_id, CustomerEmail.address.in_(wanted))
    ).all()
    return {address: customer for address, customer in rows}


def customer_for_sender(
    session: Session,
    contact_center_id: int,
    address: str,
    display_name: str | None,
    known: dict[str, Customer] | None = None,
) -> Customer:
    """The sender's customer account, created on first contact (named after the display name).

    ``known`` is a cache of address -> customer (see :func:`customers_by_address`); a customer
    created here is added to it. Two workers meeting the same new sender at once both end with
    the one customer that got the address (see :func:`_claim_address`), never with an error.
    """
    normalised = normalise_address(address)
    if known is not None and normalised in known:
        return known[normalised]
    found = None if known is not None else find_customer_by_address(session, contact_center_id, address)
    if found is None:
        name = (display_name or "").strip() or parseaddr(address)[1] or address
        found = _create_customer(session, contact_center_id, normalised, fit(Customer.name, name))
    if known is not None:
        known[normalised] = found
    return found


def _create_customer(session: Session, contact_center_id: int, address: str, name: str) -> Customer:
    """A new customer owning ``address``, or the customer another transaction gave it first.

    Written with statements of its own rather than a flush: a fetch batch's other pending rows (its
    new tickets, its messages' changes) wait for the batch's one flush at its end (inbound/process.py).
    """
    now = utcnow()
    with session.no_autoflush:
        if session.get_bind().dialect.name == "postgresql":
            customer_id, claimed = _create_and_claim(session, contact_center_id, address, name, now)
        else:
            customer_id = session.execute(
                insert(Customer)
                .values(contact_center_id=contact_center_id, name=name, created_at=now)
                .returning(Customer.id)
            ).scalar_one()
            claimed = _claim_address(session, contact_center_id, customer_id, address)
    if claimed:
        customer = Customer(id=customer_id, contact_center_id=contact_center_id, name=name, created_at=now)
        make_transient_to_detached(customer)
        session.add(customer)
        return customer
    # Another transaction took the address first: use its customer, drop ours.
    session.execute(delete(Customer).where(Customer.id == customer_id))
    owner = find_customer_by_address(session, contact_center_id, address)
    if owner is None:  # pragma: no cover - the conflicting row was committed, so it is visible
        raise UserError(f"The customer for {address!r} could not be created.")
    return owner


def _create_and_claim(
    session: Session, contact_center_id: int, address: str, name: str, now: datetime
) -> tuple[int, bool]:
    """PostgreSQL: the new customer's row and the claim of its address (as :func:`_claim_address`) in
    one statement, one round trip: the new customer's id, and whether the address was ours to take."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    created = (
        insert(Customer)
        .values(contact_center_id=contact_center_id, name=name, created_at=now)
        .returning(Customer.id)
        .cte("created")
    )
    claim = postgresql_insert(CustomerEmail).from_select(
        ["contact_center_id", "customer_id", "address", "created_at"],
        select(
            literal(contact_center_id, CustomerEmail.contact_center_id.type),
            created.c.id,
            literal(address, CustomerEmail.address.type),
            literal(now, CustomerEmail.created_at.type),
        ),
    )
    claimed = _as_claim(claim).cte("claimed")
    customer_id, claimed_id = session.execute(
        select(created.c.id, claimed.c.id).select_from(created.outerjoin(claimed, true()))
    ).one()
    return customer_id, claimed_id is not None


def _claim_address(session: Session, contact_center_id: int, customer_id: int, address: str) -> bool:
    """Give ``address`` to the customer unless another one has it; True when it was ours to take.

    ``INSERT ... ON CONFLICT DO NOTHING`` waits for a concurrent insert of the same address to
    commit and then does nothing, so no exception (and no savepoint) is needed.
    """
    # Imported here: a dialect's package costs ~30 ms to import, and a process only ever needs one.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        insert: Callable[[type[CustomerEmail]], Any] = postgresql_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert
    statement = insert(CustomerEmail).values(
        contact_center_id=contact_center_id, customer_id=customer_id, address=address, created_at=utcnow()
    )
    return session.execute(_as_claim(statement)).first() is not None


def _as_claim(statement: Any) -> Any:
    """A dialect's ``INSERT`` of a customer's address made a claim: nothing when another customer
    already has the address in the contact centre (it is unique there), the new row's id when not."""
    return statement.on_conflict_do_nothing(index_elements=["contact_center_id", "address"]).returning(
        CustomerEmail.id
    )


def list_customers(session: Session, contact_center_id: int) -> list[Customer]:
    return list(
        session.scalars(
            select(Customer)
            .where(Customer.contact_center_id == contact_center_id)
            .options(selectinload(Customer.emails))
            .order_by(Customer.id)
        )
    )


# --- JSON views (the documents 'postroom campaign|queue|agent|customer list --json' prints) ------------


def _live_names(profiles: list[MediaProfile]) -> list[str]:
    return [p.name for p in profiles if p.deleted_at is None]


def campaigns_as_json(session: Session, contact_center_id: int) -> list[dict[str, Any]]:
    """The campaigns with their queues and (live) profiles."""
    return [
        {
            "id": c.id,
            "name": c.name,
            "queues": [q.name for q in c.queues],
            "profiles": _live_names(c.profiles),
        }
        for c in list_campaigns(session, contact_center_id)
    ]


def queues_as_json(session: Session, contact_center_id: int) -> list[dict[str, Any]]:
    """The queues with their campaign and (live) profiles."""
    return [
        {"id": q.id, "campaign": q.campaign.name, "name": q.name, "profiles": _live_names(q.profiles)}
        for q in list_queues(session, contact_center_id)
    ]


def agents_as_json(session: Session, contact_center_id: int) -> list[dict[str, Any]]:
    """The agents with their address and (live) profiles."""
    return [
        {"id": a.id, "name": a.name, "email": a.email, "profiles": _live_names(a.profiles)}
        for a in list_agents(session, contact_center_id)
    ]


def customers_as_json(session: Session, contact_center_id: int) -> list[dict[str, Any]]:
    """The customers with their addresses."""
    return [
        {"id": c.id, "name": c.name, "emails": [e.address for e in c.emails]}
        for c in list_customers(session, contact_center_id)
    ]
