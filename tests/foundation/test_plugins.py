"""The plugin contract: builtins, a real external distribution, switches, and name conflicts."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.app import Postroom
from postroom.core.data.models import Ticket
from postroom.core.plugin_host import DEFAULT_PLUGINS, PluginHost
from tests.support.cli import Cli

EXTERNAL = "example-resolver"
EXTERNAL_BOUNCES = "example-bounce-reader"  # the same distribution's bounce reader (tests/bounces)


def test_the_external_distribution_is_installed_in_the_test_environment() -> None:
    # The README's test command pip-installs tests/plugin_dist; without it the next tests mean nothing.
    assert metadata.distribution("postroom-example-resolver").version == "1.2.0"


def test_builtins_are_listed_with_their_kinds(postroom_cli: Cli) -> None:
    plugins = {p["name"]: p for p in postroom_cli.ok("plugins", "list", "--json").json()}
    assert plugins["imap"]["kind"] == "protocol"
    assert set(plugins["imap"]["provides"]) == {"imap", "imaps"}
    assert plugins["no-retry"]["kind"] == "policy"
    assert plugins["send-error-classifier"]["kind"] == "other"
    builtin_names = {name for name, _module in DEFAULT_PLUGINS}
    assert {name for name, p in plugins.items() if p["source"] == "builtin"} == builtin_names
    assert all(plugins[name]["status"] == "enabled" for name in builtin_names)


def test_external_plugin_is_discovered_used_disabled_and_enabled_again(postroom_cli: Cli) -> None:
    plugins = {p["name"]: p for p in postroom_cli.ok("plugins", "list", "--json").json()}
    assert plugins[EXTERNAL] == {
        "name": EXTERNAL,
        "kind": "resolver",  # it also adds a command, but it registers one kind of plugin class
        "source": "postroom-example-resolver 1.2.0",
        "enabled": True,
        "status": "enabled",
        "provides": ["newest-open"],
        "error": None,
        "remedy": None,
    }
    postroom_cli.ok("profile", "add", "p1", "--resolver", "newest-open")
    assert postroom_cli.ok("profile", "show", "p1", "--json").json()["resolvers"] == ["newest-open"]
    hello = postroom_cli.run_process("example-hello")
    assert hello.exit_code == 0, hello.stderr
    assert hello.stdout.strip() == "hello from postroom-example-resolver"

    postroom_cli.ok("plugins", "disable", EXTERNAL)
    plugins = {p["name"]: p for p in postroom_cli.ok("plugins", "list", "--json").json()}
    assert plugins[EXTERNAL]["enabled"] is False
    refused = postroom_cli.run("profile", "add", "p2", "--resolver", "newest-open")
    # Told "disabled", with the command that fixes it, not "unknown".
    assert refused.exit_code != 0
    assert (
        "The resolver 'newest-open' comes from plugin 'example-resolver', which is disabled; "
        "'postroom plugins enable example-resolver' switches it back on."
    ) in refused.stderr
    unknown = postroom_cli.run("profile", "add", "p3", "--resolver", "no-such-resolver")
    assert unknown.exit_code == 1 and "Unknown resolver 'no-such-resolver'; choose from: " in unknown.stderr
    assert postroom_cli.run_process("example-hello").exit_code != 0

    postroom_cli.ok("plugins", "enable", EXTERNAL)
    postroom_cli.ok("profile", "add", "p2", "--resolver", "newest-open")


def test_disable_environment_variable_blocks_a_plugin(monkeypatch: pytest.MonkeyPatch, app: Postroom) -> None:
    monkeypatch.setenv("POSTROOM_DISABLE_PLUGINS", "pop3, ews")
    host = PluginHost()
    assert "pop3" not in host.protocols and "pop3s" not in host.protocols and "ews" not in host.protocols
    assert "imap" in host.protocols
    assert {p.name: p.enabled for p in host.catalogue}["pop3"] is False


def test_unknown_plugin_name_is_refused(postroom_cli: Cli) -> None:
    result = postroom_cli.run("plugins", "disable", "nonesuch")
    assert result.exit_code == 1
    assert "no plugin named 'nonesuch'" in result.stderr


class _Shadow(ResolverPlugin):
    NAME = "customer"

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        return None


class _ShadowPlugin:
    @hookimpl
    def postroom_register_resolvers(self) -> list[type[ResolverPlugin]]:
        return [_Shadow]


def test_a_duplicate_name_is_left_out_naming_both_plugins() -> None:
    host = PluginHost(extra=[("shadow", _ShadowPlugin())])
    shadow = host.info("shadow")
    assert shadow is not None and shadow.status == "failed"
    assert shadow.error is not None and "'customer'" in shadow.error and "'customer-resolvers'" in shadow.error
    assert host.resolvers["customer"] is not _Shadow and host.pm.get_plugin("shadow") is None


def test_core_never_imports_plugins() -> None:
    code = (
        "import sys, postroom, postroom.core.app, postroom.core.data.profiles, postroom.cli;"
        "print([m for m in sys.modules if m.startswith('postroom.plugins')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_protocol_help_is_built_from_the_enabled_protocols(postroom_cli: Cli) -> None:
    def protocol_help() -> str:  # a real process: the database comes from POSTROOM_DATABASE_URL, as in use
        shown = postroom_cli.run_process("profile", "add", "--help")
        assert shown.exit_code == 0, shown.stderr
        return " ".join(shown.stdout.split())

    # The test command installs the plugin guide's examples, one of which adds the mbox protocol.
    assert "--fetch-protocol TEXT none, ews, graph, imap, imaps, maildir, mbox, pop3, pop3s (fixed after creation)." in (
        protocol_help()
    )
    postroom_cli.ok("plugins", "disable", "ews")
    shown = protocol_help()
    assert "--fetch-protocol TEXT none, graph, imap, imaps, maildir, mbox, pop3, pop3s (fixed after creation)." in shown
    assert "--send-protocol TEXT none, graph, maildir, smtp, smtps (fixed after creation)." in shown
    # A profile naming the disabled protocol is told how to get it back.
    refused = postroom_cli.run("profile", "add", "x", "--fetch-protocol", "ews", "--incoming-host", "h")
    assert refused.exit_code == 1
    assert "The protocol 'ews' comes from plugin 'ews', which is disabled; 'postroom plugins enable ews'" in (
        refused.stderr
    )
