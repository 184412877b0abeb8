"""ic_configuration_parameter and media_profile_configuration: the CLI and the seed's own SQL."""

from __future__ import annotations

from sqlalchemy import text

from postroom.core.app import Postroom
from postroom.core.data import configuration
from tests.support.cli import Cli


def test_config_set_add_get_remove(postroom_cli: Cli) -> None:
    postroom_cli.ok("config", "set", "failureMailConfiguration", "mailer-daemon@googlemail.com")
    postroom_cli.ok("config", "add", "failuremailconfiguration", "MAILER-DAEMON@example.test")
    values = postroom_cli.ok("config", "get", "FailureMailConfiguration", "--json").json()
    assert values == {
        "name": "failureMailConfiguration",
        "values": ["mailer-daemon@googlemail.com", "MAILER-DAEMON@example.test"],
    }
    postroom_cli.ok("config", "remove", "failureMailConfiguration", "MAILER-DAEMON@example.test")
    assert postroom_cli.ok("config", "get", "failureMailConfiguration").stdout.split() == [
        "mailer-daemon@googlemail.com"
    ]
    postroom_cli.ok("config", "set", "failureMailConfiguration", "postmaster@example.test")
    assert [r["value"] for r in postroom_cli.ok("config", "list", "--json").json()] == [
        "postmaster@example.test"
    ]


def test_config_values_are_checked(postroom_cli: Cli) -> None:
    bad_address = postroom_cli.run("config", "set", "failureMailConfiguration", "nobody")
    assert bad_address.exit_code == 1 and "not an email address" in bad_address.stderr
    bad_mapping = postroom_cli.run("config", "set", "mediaProfileMapping", "[1, 2]")
    assert bad_mapping.exit_code == 1 and "JSON object of profile ids" in bad_mapping.stderr
    unknown = postroom_cli.run("config", "set", "colour", "blue")
    assert unknown.exit_code == 1 and "Unknown configuration parameter" in unknown.stderr


def test_seed_sql_for_failure_mail_and_mapping_works_as_written(app: Postroom) -> None:
    with app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into ic_configuration_parameter (contact_center_id, name, value) "
                "values (1, 'failureMailConfiguration', 'mailer-daemon@googlemail.com');"
            )
        )
        connection.execute(
            text(
                "insert into ic_configuration_parameter (contact_center_id, name, value) "
                "values (1, 'mediaProfileMapping', '{\"3\":\"4\"}');"
            )
        )
        connection.execute(
            text(
                "insert into ic_configuration_parameter (contact_center_id, name, value) "
                "values (1, 'mediaprofilemapping', '{\"5\": \"6\"}');"
            )
        )
    with app.transaction() as session:
        assert configuration.failure_mail_addresses(session, 1) == {"mailer-daemon@googlemail.com"}
        assert configuration.profile_mapping(session, 1) == {3: 4, 5: 6}


def test_seed_sql_for_retry_variables_and_profile_retry_agree(postroom_cli: Cli, app: Postroom) -> None:
    postroom_cli.ok("profile", "add", "p1")
    profile_id = postroom_cli.ok("profile", "show", "p1", "--json").json()["id"]
    with app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into media_profile_configuration(media_profile_id, contact_center_id, media_profile_type, "
                "media_profile_properties) values (:id, 1, 'email', "
                '\'{"maxRetryCount":"5","rateLimitRetryTime":"3600","progressiveRetryInterval":"60"}\')'
            ),
            {"id": profile_id},
        )
    retry = postroom_cli.ok("profile", "show", "p1", "--json").json()["retry"]
    assert retry == {"max_retry_count": 5, "rate_limit_retry_time": 3600, "progressive_retry_interval": 60}
    postroom_cli.ok("profile", "retry", "p1", "--max-retry-count", "2")
    retry = postroom_cli.ok("profile", "show", "p1", "--json").json()["retry"]
    assert retry == {"max_retry_count": 2, "rate_limit_retry_time": 3600, "progressive_retry_interval": 60}


def test_retry_defaults_are_the_seeds(postroom_cli: Cli) -> None:
    postroom_cli.ok("profile", "add", "p1")
    retry = postroom_cli.ok("profile", "show", "p1", "--json").json()["retry"]
    assert retry == {"max_retry_count": 3, "rate_limit_retry_time": 86400, "progressive_retry_interval": 300}


def test_reload_bumps_the_configuration_generation(postroom_cli: Cli, app: Postroom) -> None:
    postroom_cli.ok("reload")
    postroom_cli.ok("reload")
    with app.transaction() as session:
        assert configuration.config_generation(session) == 2


def test_directory_commands_and_json(postroom_cli: Cli) -> None:
    postroom_cli.ok("campaign", "add", "Sales")
    postroom_cli.ok("queue", "add", "Sales", "First line")
    postroom_cli.ok("agent", "add", "alice", "--email", "alice@example.test")
    postroom_cli.ok("customer", "add", "Bob", "--email", "bob@example.test", "--email", "Bob@Home.example")
    assert postroom_cli.ok("customer", "list", "--json").json() == [
        {"id": 1, "name": "Bob", "emails": ["bob@example.test", "bob@home.example"]}
    ]
    taken = postroom_cli.run("customer", "add", "Other", "--email", "BOB@example.test")
    assert taken.exit_code == 1 and "already belongs to another customer" in taken.stderr
    assert postroom_cli.ok("queue", "list", "--json").json()[0]["campaign"] == "Sales"
    missing = postroom_cli.run("queue", "add", "Nope", "q")
    assert missing.exit_code == 1 and "no campaign named 'Nope'" in missing.stderr


def test_a_database_that_cannot_be_reached_is_one_sentence(postroom_home: object) -> None:
    cli = Cli("postgresql+psycopg2://nobody:secretpw@127.0.0.1:1/none")
    result = cli.run("profile", "list")
    assert result.exit_code == 1
    assert "could not be used" in result.stderr
    assert "secretpw" not in result.stderr
    assert "Traceback" not in result.stderr


def test_init_is_needed_first(tmp_path: object) -> None:
    cli = Cli(f"sqlite:///{tmp_path}/fresh.sqlite")
    result = cli.run("profile", "list")
    assert result.exit_code == 1 and "run 'postroom init'" in result.stderr
    assert cli.run("init").exit_code == 0
    assert cli.run("init").exit_code == 0  # idempotent: upgrades in place
    assert cli.ok("profile", "list", "--json").json() == []
