"""The command line's shape: every command reachable, each module imported only for its own commands."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
from click.testing import CliRunner, Result

from postroom.cli import COMMAND_MODULES, cli
from tests.support.cli import Cli


def test_every_command_module_registers_exactly_the_commands_mapped_to_it() -> None:
    registered: dict[str, set[str]] = {}
    for module in sorted({m for modules in COMMAND_MODULES.values() for m in modules}):
        group = click.Group()
        importlib.import_module(f"postroom.cli.{module}").register(group)
        registered[module] = set(group.commands)
    for module, names in registered.items():
        mapped = {name for name, modules in COMMAND_MODULES.items() if modules[0] == module}
        assert names - {"ticket"} <= set(COMMAND_MODULES), module
        assert mapped <= names, f"{module} does not define {mapped - names}"
    assert set().union(*registered.values()) | {"ticket"} == set(COMMAND_MODULES)


def test_help_lists_the_builtin_and_the_installed_plugin_commands(database_url: str) -> None:
    result = CliRunner().invoke(cli, ["--database-url", database_url, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    # example-hello: tests/plugin_dist; vip: examples/postroom-vip (docs/plugins/commands.md).
    assert listed == {"init", *COMMAND_MODULES, "example-hello", "vip"}


def test_a_plugin_command_follows_the_switch_of_the_database_named_on_the_command_line(
    postroom_cli: Cli,
) -> None:
    def hello() -> Result:
        return CliRunner().invoke(cli, ["--database-url", postroom_cli.database_url, "example-hello"])

    assert hello().stdout.strip() == "hello from postroom-example-resolver"
    postroom_cli.ok("plugins", "disable", "example-resolver")
    gone = hello()
    assert gone.exit_code == 2 and "No such command 'example-hello'" in gone.stderr
    postroom_cli.ok("plugins", "enable", "example-resolver")
    assert hello().exit_code == 0


def test_send_imports_neither_the_worker_nor_the_fetcher_nor_the_demo(postroom_cli: Cli) -> None:
    code = (
        "import sys; from postroom.cli import main\n"
        "sys.argv = ['postroom', 'send', '--database-url', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('postroom.cli.'))))"
    )
    postroom_cli.ok("init")
    out = subprocess.run(
        [sys.executable, "-c", code, postroom_cli.database_url], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1].split() == [
        "postroom.cli._common",
        "postroom.cli._text",
        "postroom.cli.outbound",
        "postroom.cli.tickets",
    ]


_SUBCOMMANDS = """
import importlib, json, sys, click

def fresh_cli():
    for name in [m for m in sys.modules if m == "postroom.cli" or m.startswith("postroom.cli.")]:
        del sys.modules[name]
    return importlib.import_module("postroom.cli").cli

def subcommands(name, import_all):
    cli = fresh_cli()
    if import_all:
        cli._import(*{m for ms in importlib.import_module("postroom.cli").COMMAND_MODULES.values() for m in ms})
    command = cli.get_command(click.Context(cli), name)
    return sorted(command.commands) if isinstance(command, click.Group) else []

names = sorted(importlib.import_module("postroom.cli").COMMAND_MODULES)
print(json.dumps({name: [subcommands(name, False), subcommands(name, True)] for name in names}))
"""


def test_a_command_line_naming_one_command_finds_every_subcommand_of_it() -> None:
    """``postroom profile test`` in a fresh process: its module is imported though ``profile`` lives elsewhere."""
    found = subprocess.run(
        [sys.executable, "-c", _SUBCOMMANDS], capture_output=True, text=True, timeout=60, check=True
    )
    for name, (alone, with_all) in json.loads(found.stdout).items():
        assert alone == with_all, f"'postroom {name}' alone misses {sorted(set(with_all) - set(alone))}"
    assert "test" in json.loads(found.stdout)["profile"][0]
