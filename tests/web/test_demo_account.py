"""``postroom demo`` makes a console operator and prints how to sign in (issue 13, "Must show" 1)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from postroom.cli import cli
from postroom.core.app import Postroom
from postroom.core.data import audit
from postroom.web import users


def test_the_demo_prints_credentials_that_sign_in_to_its_database(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--home", str(home)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    found = re.search(
        rf"POSTROOM_HOME={re.escape(str(home))} \S+ web, .* sign in as 'demo' with the password (\S+) ",
        result.stdout,
    )
    assert found, result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("Explore further:")
    app = Postroom(f"sqlite:///{home / 'postroom.sqlite'}")
    try:
        with app.transaction() as session:
            account = users.verify(session, "demo", found.group(1))
            assert account is not None and account.role == "operator"
            assert [(e.action, e.target) for e in audit.recent(session)] == [("web-user.add", "demo")]
    finally:
        app.dispose()
