"""A plugin platform that survives its plugins: real broken distributions, installed by ./run-tests.

``tests/plugin_dists/broken`` (distribution ``postroom-broken-plugins``) is installed into the test
environment like any third-party plugin, with one entry point per way a plugin breaks: on import,
in a registration hook, with a misspelt hook name, with a NAME a builtin has, and on one mail. So
the whole suite runs with them installed and enabled, which is the point: every other plugin and
every command keeps working. The start-up hook and ``postroom.events`` are tested here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

import blinker
import pytest

from postroom import events as public_events
from postroom import hookimpl
from postroom.core.app import Postroom
from postroom.core.contract import events
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail

DIST = "postroom-broken-plugins"
BROKEN = {
    "broken-import": "importing it raised RuntimeError: broken-import cannot be imported: its settings file is missing",
    "broken-register": (
        "its postroom_register_resolvers hook raised ValueError: broken-register could not build its resolvers"
    ),
    "mistyped-hook": "postroom_register_resolver is not a postroom hook (misspelt?)",
    "duplicate-name": (
        "it provides resolver 'customer', which plugin 'customer-resolvers' provides already; "
        "two plugins cannot share a NAME"
    ),
}


def _listed(cli: Cli) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in cli.ok("plugins", "list", "--json").json()}


def test_the_broken_distribution_is_installed_in_the_test_environment() -> None:
    # ./run-tests pip-installs tests/plugin_dists/broken; without it the tests below prove nothing.
    names = {ep.name for ep in metadata.distribution(DIST).entry_points if ep.group == "postroom"}
    assert names == {*BROKEN, "mail-breaker"}


def test_plugins_list_exits_0_and_lists_each_broken_plugin_as_failed_with_its_reason_and_remedy(
    postroom_cli: Cli,
) -> None:
    listed = postroom_cli.run_process("plugins", "list")  # a real process, as an operator runs it
    assert listed.exit_code == 0, listed.stderr
    for name, reason in BROKEN.items():
        assert f"Plugin '{name}' failed and is left out: {reason}" in listed.stdout
        assert f"To remove it: postroom plugins disable {name}, or pip uninstall {DIST}" in listed.stdout
    plugins = _listed(postroom_cli)
    for name, reason in BROKEN.items():
        assert plugins[name]["status"] == "failed" and plugins[name]["enabled"] is True
        assert plugins[name]["error"].startswith(reason)
        assert plugins[name]["remedy"] == f"postroom plugins disable {name}, or pip uninstall {DIST}"
        assert plugins[name]["provides"] == []
    # The builtin keeps its NAME; the example plugin next to the broken ones works.
    assert "customer" in plugins["customer-resolvers"]["provides"]
    assert plugins["example-resolver"]["status"] == "enabled"
    assert plugins["mail-breaker"]["status"] == "enabled"
    hello = postroom_cli.run_process("example-hello")
    assert (hello.exit_code, hello.stdout.strip()) == (0, "hello from postroom-example-resolver"), hello.stderr


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_plugin_can_be_disabled_and_is_refused_when_enabled_again(postroom_cli: Cli, name: str) -> None:
    disabled = postroom_cli.run_process("plugins", "disable", name)
    assert disabled.exit_code == 0, disabled.stderr
    assert _listed(postroom_cli)[name] | {"provides": None} == {
        "name": name,
        "kind": _listed(postroom_cli)[name]["kind"],
        "source": f"{DIST} 0.1.0",
        "enabled": False,
        "status": "disabled",
        "provides": None,
        "error": None,
        "remedy": None,
    }
    # 'plugins enable' imports and registers it first, and keeps the switch off when that fails.
    refused = postroom_cli.run("plugins", "enable", name)
    assert refused.exit_code == 1
    assert f"Plugin '{name}' cannot be enabled, it stays disabled: {BROKEN[name]}" in refused.stderr
    assert _listed(postroom_cli)[name]["status"] == "disabled"
    assert postroom_cli.run_process("plugins", "list").exit_code == 0


def test_a_disabled_plugin_is_never_imported(postroom_cli: Cli, database_url: str) -> None:
    postroom_cli.ok("plugins", "disable", "broken-import")
    postroom_cli.ok("plugins", "disable", "example-resolver")
    code = (
        "import json, sys; from postroom.core.app import Postroom;"
        f"app = Postroom({database_url!r}); app.plugins;"
        "print(json.dumps([m for m in sys.modules if m.startswith(('postroom_broken', 'postroom_example'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Its siblings of the same distribution are imported (they are enabled); the disabled ones are not.
    imported = json.loads(out)
    assert "postroom_broken_plugins.broken_register" in imported
    assert "postroom_broken_plugins.broken_import" not in imported
    assert "postroom_example_resolver" not in imported


def test_with_every_broken_plugin_installed_a_fetch_works_and_no_profile_is_in_error(
    postroom_cli: Cli, dovecot: Dovecot
) -> None:
    for profile in ("support", "other"):
        user, _ = dovecot.new_user(profile)
        dovecot.deliver_many(user, [numbered_mail(n, tag=profile) for n in range(2)])
        add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch", name=profile)
    fetched = postroom_cli.run_process("fetch", "--profile", "other", "--json")
    assert fetched.exit_code == 0, fetched.stderr
    [report] = fetched.json()
    assert (report["profile"], report["stored"], report["error"]) == ("other", 2, None)
    assert sorted((p["name"], p["status"]) for p in postroom_cli.ok("profile", "list", "--json").json()) == [
        ("other", "ok"),
        ("support", "ok"),
    ]
    assert postroom_cli.run_process("fetch").exit_code == 0


# --- the start-up hook ------------------------------------------------------------------------------


class _StartingPlugin:
    """Connects a receiver at start-up and returns the disconnect, as docs/plugins/signals.md says."""

    def __init__(self) -> None:
        self.heard: list[int] = []
        self.starts = 0
        self.undone = 0

    def receive(self, sender: object, **kwargs: Any) -> None:
        self.heard.append(kwargs["message_pk"])

    @hookimpl
    def postroom_startup(self, app: Postroom) -> Callable[[], None]:
        self.starts += 1
        public_events.message_stored.connect(self.receive)

        def undo() -> None:
            self.undone += 1
            public_events.message_stored.disconnect(self.receive)

        return undo


def _stored(pk: int) -> None:
    events.emit(events.message_stored, None, profile_id=1, message_pk=pk, message_id=None)


def test_startup_runs_for_enabled_plugins_and_is_undone_on_reload_disable_and_dispose(app: Postroom) -> None:
    plugin = _StartingPlugin()
    started = Postroom(str(app.engine.url.render_as_string(hide_password=False)),
                       extra_plugins=[("starter", plugin)], start_plugins=True)
    try:
        started.plugins  # noqa: B018
        assert (plugin.starts, plugin.undone) == (1, 0)
        _stored(1)
        started.reload_plugins()
        assert (plugin.starts, plugin.undone) == (2, 1)
        _stored(2)
        started.set_plugin_enabled("starter", False)
        assert (plugin.starts, plugin.undone) == (2, 2)
        _stored(3)
        started.set_plugin_enabled("starter", True)
        assert (plugin.starts, plugin.undone) == (3, 2)
    finally:
        started.dispose()
    assert plugin.undone == 3
    _stored(4)
    assert plugin.heard == [1, 2]


class _FailingStart:
    @hookimpl
    def postroom_startup(self, app: Postroom) -> None:
        raise OSError("no audit directory")


def test_a_startup_hook_that_raises_leaves_its_plugin_out_as_failed(app: Postroom) -> None:
    url = app.engine.url.render_as_string(hide_password=False)
    started = Postroom(url, extra_plugins=[("failing-start", _FailingStart())], start_plugins=True)
    try:
        info = started.plugins.info("failing-start")
        assert info is not None and info.status == "failed"
        assert info.error == "its postroom_startup hook raised OSError: no audit directory"
        assert started.plugins.pm.get_plugin("failing-start") is None
        assert started.plugins.info("imap") is not None and "imap" in started.plugins.protocols
    finally:
        started.dispose()


# --- postroom.events --------------------------------------------------------------------------------


def test_the_usual_blinker_idiom_gets_postroom_s_own_signals() -> None:
    assert blinker.signal("message-stored") is public_events.message_stored is events.message_stored
    assert public_events.SIGNALS["ticket-created"] is events.ticket_created
    heard: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        heard.append(kwargs)

    blinker.signal("message-stored").connect(receiver)
    try:
        _stored(7)
    finally:
        blinker.signal("message-stored").disconnect(receiver)
    assert heard == [{"profile_id": 1, "message_pk": 7, "message_id": None}]


def test_a_receiver_that_raises_is_logged_once_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[int] = []

    def broken(sender: object, **kwargs: Any) -> None:
        raise KeyError("audit table missing")

    def working(sender: object, **kwargs: Any) -> None:
        heard.append(kwargs["message_pk"])

    public_events.message_stored.connect(broken)
    public_events.message_stored.connect(working)
    try:
        with events.held():
            _stored(8)
    finally:
        public_events.message_stored.disconnect(broken)
        public_events.message_stored.disconnect(working)
    assert heard == [8]
    [record] = [r for r in caplog.records if r.exc_info]
    assert "receiver" in record.getMessage() and "broken" in record.getMessage()
    assert "message-stored" in record.getMessage()
