"""``postroom config|reload|plugins ...``: configuration parameters, live reload, plugin switches."""

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
from postroom.core.contract.errors import UserError
from postroom.core.data import configuration


@click.group("config", cls=PostroomGroup)
def config_group() -> None:
    """Contact-centre parameters (ic_configuration_parameter): failureMailConfiguration, mediaProfileMapping, retryPolicies."""


@command(config_group, "set")
@click.argument("name")
@click.argument("value")
def config_set(name: str, value: str) -> None:
    """Replace every row of NAME with one holding VALUE."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        configuration.set_value(session, cc, name, value)
        audited(session, "config.set", configuration.canonical_name(name), {"value": value})
    echo(f"{configuration.canonical_name(name)} = {value}")


@command(config_group, "add")
@click.argument("name")
@click.argument("value")
def config_add(name: str, value: str) -> None:
    """Add one more row of NAME (several failure-mail addresses, several mappings)."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        configuration.add_value(session, cc, name, value)
        audited(session, "config.add", configuration.canonical_name(name), {"value": value})
    echo(f"{configuration.canonical_name(name)} += {value}")


@command(config_group, "get")
@click.argument("name")
@json_option
def config_get(name: str, as_json: bool) -> None:
    """Print the values of NAME, one per line."""
    app = state().app()
    cc = contact_center_id(app)
    canonical = configuration.canonical_name(name)
    with app.transaction() as session:
        values = configuration.get_values(session, cc, canonical)
    if as_json:
        print_json({"name": canonical, "values": values})
        return
    if not values:
        raise UserError(f"{canonical} is not set.")
    for value in values:
        echo(value)


@command(config_group, "list")
@json_option
def config_list(as_json: bool) -> None:
    """List every parameter row of the contact centre."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = configuration.parameters_as_json(session, cc)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "name", "value"], [[d["id"], d["name"], d["value"]] for d in documents], empty="Nothing set."
    )


@command(config_group, "remove")
@click.argument("name")
@click.argument("value", required=False)
def config_remove(name: str, value: str | None) -> None:
    """Remove the rows of NAME (only the one holding VALUE, if given)."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        removed = configuration.remove_values(session, cc, name, value)
        if removed:
            detail = {"value": value} if value is not None else {"rows": removed}
            audited(session, "config.remove", configuration.canonical_name(name), detail)
    if not removed:
        raise UserError(f"No {configuration.canonical_name(name)} row matched; nothing was removed.")
    echo(f"Removed {removed} row(s).")


@command(None, "reload")
def reload_command() -> None:
    """Make running workers re-read profiles, rules and retry settings."""
    app = state().app()
    with app.transaction() as session:
        generation = configuration.reload_configuration(session)
        audited(session, "config.reload", generation)
    echo(f"Configuration generation {generation}: running workers pick it up on their next cycle.")


@click.group("plugins", cls=PostroomGroup)
def plugins_group() -> None:
    """Installed plugins: list them, switch them off and on."""


@command(plugins_group, "list")
@json_option
def plugins_list(as_json: bool) -> None:
    """List every plugin: builtin and installed; enabled, disabled, or failed with the reason.

    A plugin that failed to load is listed with why and the command that removes it; the others
    work on, and this command exits 0.
    """
    app = state().app()
    documents = [info.as_json() for info in app.list_plugins()]
    if as_json:
        print_json(documents)
        return
    print_table(
        ["name", "kind", "source", "status", "provides"],
        [[d["name"], d["kind"], d["source"], d["status"], ", ".join(d["provides"])] for d in documents],
    )
    for d in documents:
        if d["status"] == "failed":
            echo(f"\nPlugin {d['name']!r} failed and is left out: {d['error']}.\n  To remove it: {d['remedy']}")


@command(plugins_group, "disable")
@click.argument("name")
def plugins_disable(name: str) -> None:
    """Switch a plugin off for every process using this database."""
    state().app().set_plugin_enabled(name, False, also=lambda session: audited(session, "plugin.disable", name))
    echo(f"Plugin {name!r} is disabled (running workers follow after 'postroom reload').")


@command(plugins_group, "enable")
@click.argument("name")
def plugins_enable(name: str) -> None:
    """Switch a plugin back on."""
    state().app().set_plugin_enabled(name, True, also=lambda session: audited(session, "plugin.enable", name))
    echo(f"Plugin {name!r} is enabled (running workers follow after 'postroom reload').")


def register(cli: click.Group) -> None:
    for group in (config_group, plugins_group):
        cli.add_command(group)
    cli.add_command(reload_command)
