"""Every configuration change made on the command line is in the audit log (who, what), and /audit shows it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from selenium import webdriver
from selenium.webdriver.common.by import By

from postroom.core.app import Postroom
from postroom.core.data import audit
from tests.support.cli import Cli
from tests.web.conftest import Account, LiveServer, page_text, sign_in

SECRET = "a secret the log never holds"


def _entries(database_url: str) -> list[tuple[str, str, str, dict[str, object]]]:
    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            return [(e.actor, e.action, e.target, dict(e.detail)) for e in reversed(audit.recent(session))]
    finally:
        app.dispose()


def test_cli_configuration_changes_are_audited_with_who_and_what(postroom_cli: Cli, database_url: str) -> None:
    postroom_cli.ok("campaign", "add", "Sales")
    postroom_cli.ok("queue", "add", "Sales", "First line")
    postroom_cli.ok(
        "profile", "add", "support", "--username", "support@example.com", "--password-stdin", input=SECRET + "\n"
    )
    postroom_cli.ok("profile", "modify", "support", "--subject-prefix", "[Help]", "--password-stdin", input=SECRET + "\n")
    postroom_cli.ok("profile", "retry", "support", "--max-retry-count", "4")
    added = postroom_cli.ok("rule", "add", "--profile", "support", "--campaign", "Sales", "--queue", "First line")
    rule_id = added.stdout.split()[2].rstrip(":")
    postroom_cli.ok("rule", "disable", rule_id)
    postroom_cli.ok("config", "set", "failureMailConfiguration", "failures@example.com")
    postroom_cli.ok("config", "remove", "failureMailConfiguration")
    postroom_cli.ok("profile", "delete", "support", "--yes")

    entries = _entries(database_url)
    actor = audit.cli_actor()
    assert {e[0] for e in entries} == {actor}
    assert [(action, target) for _, action, target, _ in entries] == [
        ("campaign.add", "Sales"),
        ("queue.add", "Sales/First line"),
        ("profile.add", "support"),
        ("profile.modify", "support"),
        ("retry.variables", "support"),
        ("rule.add", rule_id),
        ("rule.disable", rule_id),
        ("config.set", "failureMailConfiguration"),
        ("config.remove", "failureMailConfiguration"),
        ("profile.delete", "support"),
    ]
    details = {action: detail for _, action, _, detail in entries}
    assert details["profile.modify"] == {"subject_prefix": "[Help]", "password": "(changed)"}
    assert details["retry.variables"] == {"max_retry_count": 4}
    assert details["config.set"] == {"value": "failures@example.com"}
    assert SECRET not in json.dumps([e[3] for e in entries])


def test_a_refused_cli_change_records_nothing(postroom_cli: Cli, database_url: str) -> None:
    result = postroom_cli.run("rule", "enable", "999999")
    assert result.exit_code != 0
    assert _entries(database_url) == []


def test_plugin_switches_and_retry_policy_choices_are_audited(postroom_cli: Cli, database_url: str) -> None:
    postroom_cli.ok("plugins", "disable", "vip")
    postroom_cli.ok("plugins", "enable", "vip")
    postroom_cli.ok("retry", "set-policy", "mailbox error", "no retry")
    postroom_cli.ok("retry", "reset", "mailbox error")
    assert [(action, target) for _, action, target, _ in _entries(database_url)] == [
        ("plugin.disable", "vip"),
        ("plugin.enable", "vip"),
        ("retry.set-policy", "contact centre"),
        ("retry.reset", "contact centre"),
    ]


def test_the_audit_page_lists_a_change_made_on_the_command_line(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    address = f"failures-{uuid.uuid4().hex[:8]}@example.com"
    Cli(live_server.app.engine.url.render_as_string(hide_password=False)).ok(
        "config", "add", "failureMailConfiguration", address
    )
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/audit?action=config.add")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    mine = [row for row in rows if address in row]
    assert len(mine) == 1, page_text(browser)
    assert audit.cli_actor() in mine[0] and "failureMailConfiguration" in mine[0]
