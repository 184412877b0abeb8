"""The category → retry policy table: shown and set with ``postroom retry``, and an external policy chosen
for one category on one profile deciding exactly there (issue 12, must show 2).

The external policy is ``patient retry`` from ``examples/postroom-patient-retry``, installed by the test
command; the failures are real replies of the aiosmtpd test server.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from postroom.core.app import Postroom
from postroom.core.data.models import SendState
from tests.outbox.helpers import NOW, failure_rows, outbox_rows, queue_customer_reply, send_at
from tests.servers.smtp import SmtpScript, SmtpServers
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

pytestmark = pytest.mark.usefixtures("smtp_script")

MAILBOX_FULL = "452 4.2.2 The recipient's mailbox is full"
NO_ROUTE = "451 4.4.1 No answer from the next host"


@pytest.fixture
def desk(app: Postroom) -> Desk:
    return Desk(app)


def test_an_external_policy_chosen_for_one_category_on_one_profile_decides_there_and_only_there(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers, smtp_script: SmtpScript, postroom_cli: Cli
) -> None:
    chosen = desk.smtp_profile("support", smtp_servers.plain)
    other = desk.smtp_profile("sales", smtp_servers.plain)
    postroom_cli.ok("retry", "set-policy", "mailbox error", "patient retry", "--profile", "support")
    first, second = queue_customer_reply(desk, chosen), queue_customer_reply(desk, other)
    smtp_script.refuse_recipient(CUSTOMER, MAILBOX_FULL)

    send_at(app)

    by_reply = {row.send_info_id: row for row in failure_rows(app)}
    assert (by_reply[first].category, by_reply[first].policy, by_reply[first].next_attempt_at) == (
        "mailbox error",
        "patient retry",
        NOW + timedelta(hours=1),
    )
    assert (by_reply[second].category, by_reply[second].policy, by_reply[second].next_attempt_at) == (
        "mailbox error",
        "progressive retry",
        NOW + timedelta(seconds=300),
    )
    assert [(r.state, r.policy) for r in outbox_rows(app)] == [
        (SendState.RETRY_SCHEDULED, "patient retry"),
        (SendState.RETRY_SCHEDULED, "progressive retry"),
    ]
    listed = {d["outbox_id"]: d["policy"] for d in postroom_cli.ok("failures", "list", "--json").json()}
    assert listed == {first: "patient retry", second: "progressive retry"}
    table = postroom_cli.ok("failures", "list").stdout
    assert "patient retry" in table and "progressive retry" in table

    # Another category of the same profile keeps the seed's policy.
    smtp_script.reset()
    third = queue_customer_reply(desk, chosen)
    smtp_script.refuse_data(NO_ROUTE)
    send_at(app)
    [routing] = [row for row in failure_rows(app) if row.send_info_id == third]
    assert (routing.category, routing.policy, routing.next_attempt_at) == (
        "network routing error",
        "rate limit retry",
        NOW + timedelta(days=1),
    )


def test_the_table_shows_where_each_choice_comes_from_and_reset_gives_the_level_above_back(
    desk: Desk, postroom_cli: Cli
) -> None:
    desk.profile("support")
    postroom_cli.ok("retry", "set-policy", "Mailbox Error", "no retry")
    postroom_cli.ok("retry", "set-policy", "connection error", "patient retry", "--profile", "support")

    def table(*profile: str) -> dict[str, tuple[str, str]]:
        document = postroom_cli.ok("retry", "policies", "--json", *profile).json()
        return {row["category"]: (row["policy"], row["source"]) for row in document["table"]}

    center, own = table(), table("--profile", "support")
    assert center["mailbox error"] == own["mailbox error"] == ("no retry", "contact centre")
    assert (center["connection error"], own["connection error"]) == (
        ("progressive retry", "default"),
        ("patient retry", "profile"),
    )
    assert own["addressing error"] == ("no retry", "default")
    assert "patient retry" in postroom_cli.ok("retry", "policies").stdout

    assert postroom_cli.ok("retry", "reset", "--profile", "support").stdout.strip() == (
        "Dropped 1 choice(s) of profile 'support'."
    )
    postroom_cli.ok("retry", "reset", "mailbox error")
    assert table("--profile", "support") == table() and table()["mailbox error"] == (
        "progressive retry",
        "default",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("set-policy", "mailbox eror", "no retry"),
            "Unknown error category 'mailbox eror'; the categories are ",
        ),
        (
            ("set-policy", "mailbox error", "impatient retry"),
            "No installed and enabled retry policy is called",
        ),
        (("reset", "no category"), "Unknown error category 'no category'"),
    ],
)
def test_an_unknown_category_or_policy_is_refused_in_one_sentence_with_the_valid_ones(
    postroom_cli: Cli, args: tuple[str, ...], message: str
) -> None:
    result = postroom_cli.run("retry", *args)
    assert result.exit_code != 0
    assert result.stderr.startswith(f"Error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert ("'patient retry'" in result.stderr) == ("policy" in message)
    assert ("'mailbox error'" in result.stderr) == ("category" in message)


def test_a_policy_switched_off_is_refused_and_its_chosen_failures_say_nothing_decided(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers, smtp_script: SmtpScript, postroom_cli: Cli
) -> None:
    chosen = desk.smtp_profile("support", smtp_servers.plain)
    postroom_cli.ok("retry", "set-policy", "mailbox error", "patient retry", "--profile", "support")
    postroom_cli.ok("plugins", "disable", "patient-retry")
    refused = postroom_cli.run("retry", "set-policy", "connection error", "patient retry")
    assert "No installed and enabled retry policy is called 'patient retry'" in refused.stderr
    queue_customer_reply(desk, chosen)
    smtp_script.refuse_recipient(CUSTOMER, MAILBOX_FULL)
    send_at(Postroom(postroom_cli.database_url))
    [failure] = failure_rows(app)
    assert (failure.policy, failure.next_attempt_at) == ("patient retry (not installed: no retry)", None)
    assert (
        "patient retry (not installed)" in postroom_cli.ok("retry", "policies", "--profile", "support").stdout
    )


def test_the_contact_centre_row_is_the_seeds_configuration_parameter(postroom_cli: Cli) -> None:
    postroom_cli.ok("config", "set", "retryPolicies", '{"mailbox error": "no retry"}')
    assert postroom_cli.ok("retry", "policies", "--json").json()["table"][2] == {
        "category": "mailbox error",
        "policy": "no retry",
        "source": "contact centre",
        "installed": True,
    }
    bad = postroom_cli.run("config", "set", "retryPolicies", '{"mailbox": "no retry"}')
    assert bad.exit_code != 0 and "Unknown error category 'mailbox'" in bad.stderr


def test_replace_chooses_a_plugins_policy_for_every_category_a_builtin_decides_there_the_builtin_stays(
    desk: Desk, postroom_cli: Cli
) -> None:
    desk.profile("support")
    desk.profile("sales")
    replaced = postroom_cli.ok(
        "retry", "replace", "progressive retry", "patient retry", "--profile", "support"
    )
    assert replaced.stdout.strip() == (
        "mailbox error, mail system error, security policy error, connection error → patient retry "
        "for profile 'support' (was progressive retry)."
    )

    def policies(profile: str) -> dict[str, str]:
        document = postroom_cli.ok("retry", "policies", "--json", "--profile", profile).json()
        return {row["category"]: row["policy"] for row in document["table"]}

    support, sales = policies("support"), policies("sales")
    assert [c for c, p in support.items() if p == "patient retry"] == [
        "mailbox error",
        "mail system error",
        "security policy error",
        "connection error",
    ]
    assert "patient retry" not in sales.values() and sales["mailbox error"] == "progressive retry"
    assert {p["name"]: p["enabled"] for p in postroom_cli.ok("plugins", "list", "--json").json()}[
        "progressive-retry"
    ]
    unused = postroom_cli.run("retry", "replace", "progressive retry", "no retry", "--profile", "support")
    assert unused.exit_code != 0 and unused.stderr.startswith(
        "Error: No category is decided by 'progressive retry' here; the policies in use are "
    )
