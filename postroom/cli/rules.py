"""``postroom rule ...``: routing rules of a profile."""

from __future__ import annotations

from typing import Any

import click

from postroom.cli._common import (
    ROW_ID,
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
from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.data import directory, profiles, rules


@click.group("rule", cls=PostroomGroup)
def rule_group() -> None:
    """Routing rules: which campaign and queue a profile's mail goes to."""


@command(rule_group, "add")
@click.option("--profile", "profile_name", required=True)
@click.option("--campaign", "campaign_name", required=True)
@click.option("--queue", "queue_name", required=True)
@click.option(
    "--priority",
    type=int,
    default=100,
    show_default=True,
    help="Lower numbers are tried first (0 to 1000000).",
)
@click.option("--from", "from_pattern", help="Sender pattern, e.g. '*@example.com'.")
@click.option("--to", "to_pattern", help="Recipient pattern.")
@click.option("--subject", "subject_pattern", help="Subject pattern, e.g. '*invoice*'.")
def add_rule(profile_name: str, campaign_name: str, queue_name: str, **options: Any) -> None:
    """Add a routing rule; mail held as unrouted is routed again."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profile = profiles.get_profile(session, profile_name, cc)
        campaign = directory.get_campaign(session, cc, campaign_name)
        queue = directory.get_queue(session, campaign, queue_name)
        rule = rules.add_rule(session, profile, campaign, queue, **options)
        rule_id = rule.id
        detail = {"profile": profile_name, "campaign": campaign_name, "queue": queue_name, **options}
        audited(session, "rule.add", rule_id, detail)
    echo(f"Added rule {rule_id}: {profile_name} -> {campaign_name} / {queue_name}.")
    _reroute(app, profile_name, cc)


@command(rule_group, "list")
@json_option
def list_rules(as_json: bool) -> None:
    """List the routing rules."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = rules.rules_as_json(session, cc)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "profile", "campaign", "queue", "priority", "enabled", "from", "to", "subject"],
        [
            [
                d["id"],
                d["profile"],
                d["campaign"],
                d["queue"],
                d["priority"],
                "yes" if d["enabled"] else "no",
                d["from"],
                d["to"],
                d["subject"],
            ]
            for d in documents
        ],
        empty="No routing rules yet: mail is held as unrouted until one exists.",
    )


@command(rule_group, "delete")
@click.argument("rule_id", type=ROW_ID)
def delete_rule(rule_id: int) -> None:
    """Delete a routing rule."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        rules.delete_rule(session, cc, rule_id)
        audited(session, "rule.delete", rule_id)
    echo(f"Deleted rule {rule_id}.")


@command(rule_group, "modify")
@click.argument("rule_id", type=ROW_ID)
@click.option("--campaign", "campaign_name")
@click.option("--queue", "queue_name")
@click.option("--priority", type=int, help="Lower numbers are tried first (0 to 1000000).")
@click.option("--from", "from_pattern", help="Sender pattern ('' for any).")
@click.option("--to", "to_pattern", help="Recipient pattern ('' for any).")
@click.option("--subject", "subject_pattern", help="Subject pattern ('' for any).")
def modify_rule(rule_id: int, campaign_name: str | None, queue_name: str | None, **options: Any) -> None:
    """Change a rule's campaign, queue, priority or patterns (what is not given stays); held mail is routed again."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        rules.get_rule(session, cc, rule_id)  # the core's sentence when there is none
        current = next(d for d in rules.rules_as_json(session, cc) if d["id"] == rule_id)
        campaign = directory.get_campaign(session, cc, campaign_name or current["campaign"])
        queue = directory.get_queue(session, campaign, queue_name or current["queue"])
        given = {
            key: current[key.removesuffix("_pattern")] if value is None else value
            for key, value in options.items()
        }
        rule = rules.modify_rule(session, cc, rule_id, campaign, queue, **given)
        changed = {"campaign": campaign_name, "queue": queue_name, **options}
        audited(session, "rule.modify", rule_id, {k: v for k, v in changed.items() if v is not None})
        enabled, profile_name = rule.enabled, current["profile"]
    echo(f"Rule {rule_id} is changed.")
    if enabled:
        _reroute(app, profile_name, cc)


@command(rule_group, "move")
@click.argument("rule_id", type=ROW_ID)
@click.option("--up", "direction", flag_value=-1, help="Try the rule one place earlier.")
@click.option("--down", "direction", flag_value=1, help="Try the rule one place later.")
def move_rule(rule_id: int, direction: int | None) -> None:
    """Move a rule one place earlier or later among its profile's rules (their priorities are swapped)."""
    if direction is None:
        raise UserError("Give --up or --down.")
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        ordered = rules.move_rule(session, cc, rule_id, direction)
        audited(session, "rule.reorder", rule_id, {"direction": "up" if direction < 0 else "down"})
        shown = ", ".join(f"{r.id} ({r.priority})" for r in ordered)
    echo(f"Order of the profile's rules: {shown}.")


def _reroute(app: Postroom, profile_name: str, cc: int) -> None:
    """Route the profile's held mail again, now that a rule was added or enabled."""
    # Not imported for 'rule list' and 'rule delete', which route nothing.
    from postroom.core.inbound.reroute import reroute_held

    rerouted = reroute_held(app, profile_name, cc)
    if rerouted:
        echo(f"Routed {rerouted} held mail(s) of profile {profile_name!r}.")


def _switch_rule(rule_id: int, enabled: bool) -> None:
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profile_name = rules.set_rule_enabled(session, cc, rule_id, enabled).name
        audited(session, "rule.enable" if enabled else "rule.disable", rule_id)
    echo(f"Rule {rule_id} is {'enabled' if enabled else 'disabled'}.")
    if enabled:
        _reroute(app, profile_name, cc)


@command(rule_group, "enable")
@click.argument("rule_id", type=ROW_ID)
def enable_rule(rule_id: int) -> None:
    """Enable a routing rule; mail held as unrouted is routed again."""
    _switch_rule(rule_id, True)


@command(rule_group, "disable")
@click.argument("rule_id", type=ROW_ID)
def disable_rule(rule_id: int) -> None:
    """Disable a routing rule (mail it would route is held as unrouted)."""
    _switch_rule(rule_id, False)


def register(cli: click.Group) -> None:
    cli.add_command(rule_group)
