"""Issue 13, "Must show" 1, in the browser: after ``postroom demo``, its operator signs in to a console on
the demo's database and finds the retry the demo scheduled in the outbox, with the failed attempt."""

from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path

from click.testing import CliRunner
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from postroom.cli import cli
from postroom.core.app import Postroom
from postroom.web.app import create_app
from postroom.web.server import make_server
from tests.web.conftest import sign_in, submit


def test_the_demos_operator_finds_its_scheduled_retry_in_the_outbox(
    browser_session: webdriver.Chrome, tmp_path: Path
) -> None:
    home = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--home", str(home)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    found = re.search(r"sign in as 'demo' with the password (\S+) ", result.stdout)
    assert found, result.stdout
    app = Postroom(f"sqlite:///{home / 'postroom.sqlite'}")
    server = make_server(
        create_app(app, secret_key=secrets.token_urlsafe(32), secure_cookies=False), "127.0.0.1", 0
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        browser_session.get(f"{url}/signin")
        browser_session.delete_all_cookies()
        sign_in(browser_session, url, "demo", found.group(1))
        browser_session.get(f"{url}/outbox")
        Select(browser_session.find_element(By.ID, "filter-state")).select_by_visible_text("retry-scheduled")
        submit(browser_session, browser_session.find_element(By.ID, "filter-button"))
        [reply] = browser_session.find_elements(By.CSS_SELECTOR, "#replies tbody tr")
        assert "retry-scheduled" in reply.text
        assert browser_session.find_elements(
            By.CSS_SELECTOR, "#failures tbody tr"
        )  # the attempt the sink refused
    finally:
        browser_session.delete_all_cookies()
        server.close()
        thread.join(5)
        app.dispose()
