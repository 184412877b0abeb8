"""Routing rules: first enabled match by priority; unmatched mail is held, stored and re-routed later."""

from __future__ import annotations

import pytest

from postroom.core.app import Postroom
from postroom.core.data.models import MessageStatus
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import make_mail


def test_mail_fetched_before_any_rule_is_held_then_routed_by_rule_add(
    postroom_cli: Cli, dovecot: Dovecot
) -> None:
    user, _password = dovecot.new_user("routing")
    for number in range(5):
        dovecot.deliver(user, make_mail(f"Question {number}"))
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch")
    postroom_cli.ok("campaign", "add", "Support")
    postroom_cli.ok("queue", "add", "Support", "First line")
    fetched = postroom_cli.ok("fetch", "--json").json()
    assert fetched[0]["stored"] == 5
    held = postroom_cli.ok("unrouted", "list", "--json").json()
    assert sorted(h["subject"] for h in held) == [f"Question {n}" for n in range(5)]
    assert all(h["profile"] == "support" and "No routing rule" in h["reason"] for h in held)
    # Deleted on the server only because every one of them is stored.
    assert dovecot.count(user) == 0
    assert postroom_cli.ok("ticket", "list", "--json").json() == []

    added = postroom_cli.ok(
        "rule", "add", "--profile", "support", "--campaign", "Support", "--queue", "First line"
    )
    assert "Routed 5 held mail(s)" in added.stdout
    assert postroom_cli.ok("unrouted", "list", "--json").json() == []
    listed = postroom_cli.ok("ticket", "list", "--json").json()
    assert sorted(t["subject"] for t in listed) == [f"Question {n}" for n in range(5)]
    assert {(t["campaign"], t["queue"], t["source_profile"]) for t in listed} == {
        ("Support", "First line", "support")
    }


def test_first_enabled_rule_by_priority_wins(app: Postroom, postroom_cli: Cli) -> None:
    desk = Desk(app, ["case-id"]).setup(with_rule=False)
    postroom_cli.ok("campaign", "add", "Billing")
    postroom_cli.ok("queue", "add", "Billing", "Invoices")
    postroom_cli.ok("queue", "add", "Support", "VIP")
    postroom_cli.ok(
        "rule",
        "add",
        "--profile",
        "support",
        "--campaign",
        "Support",
        "--queue",
        "First line",
        "--priority",
        "100",
    )
    postroom_cli.ok(
        "rule",
        "add",
        "--profile",
        "support",
        "--campaign",
        "Billing",
        "--queue",
        "Invoices",
        "--priority",
        "10",
        "--subject",
        "*invoice*",
    )
    postroom_cli.ok(
        "rule",
        "add",
        "--profile",
        "support",
        "--campaign",
        "Support",
        "--queue",
        "VIP",
        "--priority",
        "5",
        "--from",
        "*@vip.test",
    )
    postroom_cli.ok(
        "rule",
        "add",
        "--profile",
        "support",
        "--campaign",
        "Support",
        "--queue",
        "First line",
        "--priority",
        "1",
        "--to",
        "sales@acme.test",
    )
    desk.deliver(make_mail("My INVOICE is wrong", sender="bob@a.test"))
    desk.deliver(make_mail("Invoice again", sender="ceo@vip.test"))
    desk.deliver(make_mail("Hello", sender="bob@a.test"))
    desk.deliver(make_mail("Invoice for sales", sender="bob@a.test", to="Sales <sales@acme.test>"))
    placed = {
        t["subject"]: (t["campaign"], t["queue"]) for t in postroom_cli.ok("ticket", "list", "--json").json()
    }
    assert placed == {
        "My INVOICE is wrong": ("Billing", "Invoices"),
        "Invoice again": ("Support", "VIP"),
        "Hello": ("Support", "First line"),
        "Invoice for sales": ("Support", "First line"),
    }
    rules = postroom_cli.ok("rule", "list", "--json").json()
    assert [r["priority"] for r in rules] == [1, 5, 10, 100]
    assert rules[2]["subject"] == "*invoice*"


def test_disabling_the_only_rule_holds_mail_and_enabling_it_routes_it(
    app: Postroom, postroom_cli: Cli
) -> None:
    desk = Desk(app, ["customer"]).setup()
    postroom_cli.ok("rule", "disable", "1")
    message = desk.deliver(make_mail("Hello", sender="bob@a.test"))
    assert message.status == MessageStatus.UNROUTED
    enabled = postroom_cli.ok("rule", "enable", "1")
    assert "Routed 1 held mail(s)" in enabled.stdout
    assert len(postroom_cli.ok("ticket", "list", "--json").json()) == 1


@pytest.mark.parametrize("header", ["Auto-Submitted: auto-generated", "Precedence: junk"])
def test_own_profile_and_automatic_mail_is_marked(app: Postroom, header: str) -> None:
    desk = Desk(app, ["customer"]).setup()
    name, value = header.split(": ")
    automatic = desk.deliver(make_mail("Away", sender="bob@a.test", headers={name: value}))
    own = desk.deliver(make_mail("Loop", sender="ACME Support <support@acme.test>"))
    assert automatic.is_auto_reply and own.is_auto_reply
    assert "own-profile" in own.tags
