"""``postroom campaign|queue|agent|customer ...``: who and where."""

from __future__ import annotations

import click

from postroom.cli._common import (
    PostroomGroup,
    audited,
    command,
    contact_center_id,
    echo,
    json_option,
    print_json,
    print_table,
    state,
)
from postroom.core.data import directory


@click.group("campaign", cls=PostroomGroup)
def campaign_group() -> None:
    """Campaigns: where routed mail goes."""


@command(campaign_group, "add")
@click.argument("name")
@click.option(
    "--profile", "profile_names", multiple=True, help="A media profile the campaign uses (repeatable)."
)
def add_campaign(name: str, profile_names: tuple[str, ...]) -> None:
    """Add a campaign."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        campaign = directory.add_campaign(session, cc, name)
        directory.assign_profiles(session, campaign, cc, list(profile_names))
        audited(session, "campaign.add", name, {"profiles": list(profile_names)})
        campaign_id = campaign.id
    echo(f"Created campaign {name!r} (id {campaign_id}).")


@command(campaign_group, "list")
@json_option
def list_campaigns(as_json: bool) -> None:
    """List the campaigns with their queues and profiles."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = directory.campaigns_as_json(session, cc)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "name", "queues", "profiles"],
        [[d["id"], d["name"], ", ".join(d["queues"]), ", ".join(d["profiles"])] for d in documents],
        empty="No campaigns yet; add one with 'postroom campaign add'.",
    )


@click.group("queue", cls=PostroomGroup)
def queue_group() -> None:
    """Queues within campaigns."""


@command(queue_group, "add")
@click.argument("campaign")
@click.argument("name")
@click.option(
    "--profile", "profile_names", multiple=True, help="A media profile the queue uses (repeatable)."
)
def add_queue(campaign: str, name: str, profile_names: tuple[str, ...]) -> None:
    """Add a queue to a campaign."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        queue = directory.add_queue(session, directory.get_campaign(session, cc, campaign), name)
        directory.assign_profiles(session, queue, cc, list(profile_names))
        audited(session, "queue.add", f"{campaign}/{name}", {"profiles": list(profile_names)})
        queue_id = queue.id
    echo(f"Created queue {name!r} in campaign {campaign!r} (id {queue_id}).")


@command(queue_group, "list")
@json_option
def list_queues(as_json: bool) -> None:
    """List the queues."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = directory.queues_as_json(session, cc)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "campaign", "name", "profiles"],
        [[d["id"], d["campaign"], d["name"], ", ".join(d["profiles"])] for d in documents],
        empty="No queues yet; add one with 'postroom queue add CAMPAIGN NAME'.",
    )


@click.group("agent", cls=PostroomGroup)
def agent_group() -> None:
    """Agents (users) and the media profiles they work with."""


@command(agent_group, "add")
@click.argument("name")
@click.option("--email", help="The agent's own address.")
@click.option(
    "--profile", "profile_names", multiple=True, help="A media profile the agent uses (repeatable)."
)
def add_agent(name: str, email: str | None, profile_names: tuple[str, ...]) -> None:
    """Add an agent."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        agent = directory.add_agent(session, cc, name, email)
        directory.assign_profiles(session, agent, cc, list(profile_names))
        audited(session, "agent.add", name, {"email": email, "profiles": list(profile_names)})
        agent_id = agent.id
    echo(f"Created agent {name!r} (id {agent_id}).")


@command(agent_group, "list")
@json_option
def list_agents(as_json: bool) -> None:
    """List the agents."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = directory.agents_as_json(session, cc)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "name", "email", "profiles"],
        [[d["id"], d["name"], d["email"], ", ".join(d["profiles"])] for d in documents],
        empty="No agents yet; add one with 'postroom agent add'.",
    )


@click.group("customer", cls=PostroomGroup)
def customer_group() -> None:
    """Customers and their email addresses."""


@command(customer_group, "add")
@click.argument("name")
@click.option(
    "--email", "emails", multiple=True, required=True, help="An address of the customer (repeatable)."
)
def add_customer(name: str, emails: tuple[str, ...]) -> None:
    """Add a customer with one or more addresses."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        customer_id = directory.add_customer(session, cc, name, list(emails)).id
    echo(f"Created customer {name!r} (id {customer_id}).")


@command(customer_group, "list")
@json_option
def list_customers(as_json: bool) -> None:
    """List the customers."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = directory.customers_as_json(session, cc)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "name", "emails"],
        [[d["id"], d["name"], ", ".join(d["emails"])] for d in documents],
        empty="No customers yet.",
    )


def register(cli: click.Group) -> None:
    for group in (campaign_group, queue_group, agent_group, customer_group):
        cli.add_command(group)
