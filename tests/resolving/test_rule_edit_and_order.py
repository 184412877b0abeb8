"""Editing and reordering routing rules (the console's Edit and Up/Down): checked as ``rule add`` checks,
and a move keeps the other rules' numbers unless two shared one."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data import directory, rules
from postroom.core.data.models import RoutingRule
from postroom.core.data.profiles import get_profile
from tests.support.cli import Cli
from tests.support.desk import Desk

CC = directory.DEFAULT_CONTACT_CENTER_ID


def _order(app: Postroom) -> list[tuple[str | None, int]]:
    with app.transaction() as session:
        found = session.scalars(select(RoutingRule).order_by(RoutingRule.priority, RoutingRule.id))
        return [(r.subject_pattern, r.priority) for r in found]


def _rules(app: Postroom, priorities: list[int]) -> list[int]:
    """Profile ``support`` with one rule per priority (subjects r0, r1, ...) into Support / First line."""
    Desk(app).setup(with_rule=False)
    with app.transaction() as session:
        support = get_profile(session, "support", CC)
        campaign = directory.get_campaign(session, CC, "Support")
        queue = directory.get_queue(session, campaign, "First line")
        return [
            rules.add_rule(session, support, campaign, queue, priority=p, subject_pattern=f"r{n}").id
            for n, p in enumerate(priorities)
        ]


def test_a_move_swaps_the_numbers_and_stops_at_the_ends(app: Postroom) -> None:
    first, second, third = _rules(app, [10, 50, 70])
    with app.transaction() as session:
        rules.move_rule(session, CC, third, -1)
    assert _order(app) == [("r0", 10), ("r2", 50), ("r1", 70)]
    with app.transaction() as session:
        rules.move_rule(session, CC, first, -1)  # first already
        rules.move_rule(session, CC, second, 1)  # last already
    assert _order(app) == [("r0", 10), ("r2", 50), ("r1", 70)]


def test_rules_sharing_a_number_are_renumbered_before_a_move(app: Postroom) -> None:
    _first, second, _third = _rules(app, [100, 100, 100])
    with app.transaction() as session:
        rules.move_rule(session, CC, second, -1)
    assert _order(app) == [("r1", 10), ("r0", 20), ("r2", 30)]


def test_an_edit_is_refused_as_rule_add_refuses(app: Postroom) -> None:
    [rule_id] = _rules(app, [10])
    with app.transaction() as session:
        campaign = directory.get_campaign(session, CC, "Support")
        other = directory.add_campaign(session, CC, "Billing")
        invoices = directory.add_queue(session, other, "Invoices")
        with pytest.raises(
            UserError, match=re.escape("Queue 'Invoices' does not belong to campaign 'Support'.")
        ):
            rules.modify_rule(session, CC, rule_id, campaign, invoices, priority=10)
        with pytest.raises(UserError, match=re.escape("The rule priority must be between 0 and")):
            rules.modify_rule(session, CC, rule_id, other, invoices, priority=-1)
        with pytest.raises(UserError, match=re.escape("The subject pattern must be a single line.")):
            rules.modify_rule(session, CC, rule_id, other, invoices, priority=1, subject_pattern="a\nb")
        with pytest.raises(NotFoundError, match=re.escape("There is no routing rule 999999.")):
            rules.modify_rule(session, CC, 999999, other, invoices, priority=1)
        rules.modify_rule(session, CC, rule_id, other, invoices, priority=3, from_pattern="*@vip.example")
    with app.transaction() as session:
        rule = session.get(RoutingRule, rule_id)
        assert rule is not None
        assert (rule.queue_id, rule.priority, rule.from_pattern, rule.subject_pattern) == (
            invoices.id,
            3,
            "*@vip.example",
            None,
        )


def test_rule_modify_keeps_what_is_not_given_and_rule_move_reorders(app: Postroom, postroom_cli: Cli) -> None:
    first, second = _rules(app, [10, 20])
    postroom_cli.ok("rule", "modify", str(first), "--subject", "", "--from", "*@acme.example")
    [one, two] = postroom_cli.ok("rule", "list", "--json").json()
    assert (one["id"], one["priority"], one["from"], one["subject"], one["queue"]) == (
        first,
        10,
        "*@acme.example",
        None,
        "First line",
    )
    refused = postroom_cli.run("rule", "modify", str(second), "--priority", "-5")
    assert refused.exit_code == 1 and "The rule priority must be between 0 and" in refused.stderr
    assert "Give --up or --down." in postroom_cli.run("rule", "move", str(second)).stderr
    postroom_cli.ok("rule", "move", str(second), "--up")
    assert [(r["id"], r["priority"]) for r in postroom_cli.ok("rule", "list", "--json").json()] == [
        (second, 10),
        (first, 20),
    ]
    assert two["subject"] == "r1"
