"""``postroom retry ...``: the category → retry policy table, for the contact centre or one profile."""

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
from postroom.core.data import profiles, retry_policies

_PROFILE = click.option(
    "--profile", "profile_name", metavar="NAME", help="One profile's table (default: the contact centre's)."
)


@click.group("retry", cls=PostroomGroup)
def retry_group() -> None:
    """Which retry policy decides each error category: the seed's table unless you choose otherwise."""


@command(retry_group, "policies")
@_PROFILE
@json_option
def show_policies(profile_name: str | None, as_json: bool) -> None:
    """Show the category → policy table in force, where each choice comes from, and the installed policies."""
    app = state().app()
    cc = contact_center_id(app)
    installed = app.plugins.policies
    with app.transaction() as session:
        profile = profiles.get_profile(session, profile_name, cc) if profile_name else None
        rows = retry_policies.table(session, cc, profile.id if profile else None)
    if as_json:
        print_json(
            {
                "profile": profile_name,
                "table": [{**row.as_json(), "installed": row.policy in installed} for row in rows],
                "policies": {name: cls.LABEL for name, cls in sorted(installed.items())},
            }
        )
        return
    print_table(
        ["category", "policy", "from"],
        [
            [
                row.category.value,
                row.policy + ("" if row.policy in installed else " (not installed)"),
                row.source,
            ]
            for row in rows
        ],
    )
    echo("")
    echo("Installed policies: " + ", ".join(sorted(installed)) + ".")


@command(retry_group, "set-policy")
@click.argument("category")
@click.argument("policy")
@_PROFILE
def set_policy(category: str, policy: str, profile_name: str | None) -> None:
    """Choose POLICY for CATEGORY (quote both: "mailbox error" "patient retry")."""
    app = state().app()
    cc = contact_center_id(app)
    installed = set(app.plugins.policies)
    with app.transaction() as session:
        profile = profiles.get_profile(session, profile_name, cc) if profile_name else None
        choice = retry_policies.set_policy(session, cc, category, policy, installed, profile)
        audited(session, "retry.set-policy", profile_name or "contact centre", choice.as_json())
    where = f"profile {profile_name!r}" if profile_name else "the contact centre"
    echo(
        f"{choice.category.value} → {choice.policy} for {where} "
        "(running workers use it from their next send)."
    )


@command(retry_group, "replace")
@click.argument("old")
@click.argument("new")
@_PROFILE
def replace(old: str, new: str, profile_name: str | None) -> None:
    """Choose NEW for every category OLD decides (e.g. a plugin's policy for a builtin); OLD stays installed."""
    app = state().app()
    cc = contact_center_id(app)
    installed = set(app.plugins.policies)
    with app.transaction() as session:
        profile = profiles.get_profile(session, profile_name, cc) if profile_name else None
        categories = retry_policies.replace_policy(session, cc, old, new, installed, profile)
        detail = {"old": old, "new": new, "categories": [c.value for c in categories]}
        audited(session, "retry.replace", profile_name or "contact centre", detail)
    where = f"profile {profile_name!r}" if profile_name else "the contact centre"
    echo(f"{', '.join(c.value for c in categories)} → {new} for {where} (was {old}).")


@command(retry_group, "reset")
@click.argument("category", required=False)
@_PROFILE
def reset(category: str | None, profile_name: str | None) -> None:
    """Drop the choice of CATEGORY (every choice, without one): the level above decides again."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profile = profiles.get_profile(session, profile_name, cc) if profile_name else None
        dropped = retry_policies.reset(session, cc, category, profile)
        audited(session, "retry.reset", profile_name or "contact centre", {"category": category, "dropped": dropped})
    where = f"profile {profile_name!r}" if profile_name else "the contact centre"
    echo(f"Dropped {dropped} choice(s) of {where}.")


def register(cli: click.Group) -> None:
    cli.add_command(retry_group)
