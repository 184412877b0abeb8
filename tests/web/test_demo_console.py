"""Issue 13, "Must show" 1: a newcomer runs ``postroom demo``, then ``postroom web`` against the demo's
home, signs in with the credentials the demo printed, and sees the demo's tickets and the retry it
scheduled. Both commands run as processes, as typed; the browser is the session's real Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.web.conftest import page_text, sign_in, submit

POSTROOM = str(Path(sys.executable).parent / "postroom")


@pytest.fixture
def demo_console(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Run the demo; serve its home with the command it printed: (console URL, name, password)."""
    home = tmp_path / "demo"
    demo = subprocess.run([POSTROOM, "demo", "--home", str(home)], capture_output=True, text=True, check=True)
    printed = re.search(
        r"The console: POSTROOM_HOME=(\S+) (\S+) web, then open \S+ and sign in as '(\S+)' "
        r"with the password (\S+) ",
        demo.stdout,
    )
    assert printed, demo.stdout
    printed_home, command, name, password = printed.groups()
    assert printed_home == str(home)
    env = {**os.environ, "POSTROOM_HOME": printed_home, "PYTHONUNBUFFERED": "1"}
    # Port 0 rather than the printed default 8080: tests run side by side on this machine.
    server = subprocess.Popen(
        [command, "web", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        serving = re.search(r"serving the console on (http://\S+)/ ", first)
        assert serving, first
        yield serving.group(1), name, password
    finally:
        server.terminate()
        server.wait()


def test_the_demo_then_postroom_web_shows_its_tickets_and_its_scheduled_retry(
    browser: webdriver.Chrome, demo_console: tuple[str, str, str]
) -> None:
    url, name, password = demo_console
    sign_in(browser, url, name, password)
    assert f"{name} (operator)" in page_text(browser)
    submit(browser, browser.find_element(By.LINK_TEXT, "Inbox"))
    subjects = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#tickets tbody td a")]
    assert subjects == [
        "Warranty claim",
        "Where is my order #1001?",
        "Out of office: Your ACME order",
        "Cancel my subscription",
    ]  # newest activity first: Erin's and Alice's tickets got the replies last
    submit(browser, browser.find_element(By.LINK_TEXT, "Warranty claim"))
    delivery = browser.find_element(By.CSS_SELECTOR, "article.outbound .delivery").text
    assert delivery.startswith("Delivery: retry-scheduled (outbox 2, 1 attempt) · next attempt at ")
    assert "to busy.erin@customer.example" in delivery
    assert "452 4.2.2" in delivery and "Mailbox full" in delivery
    browser.get(f"{url}/inbox")
    submit(browser, browser.find_element(By.LINK_TEXT, "Cancel my subscription"))
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "article.bounce .badge.bounce")] == [
        "bounce"
    ]
    browser.get(f"{url}/inbox")
    submit(browser, browser.find_element(By.LINK_TEXT, "Where is my order #1001?"))
    assert browser.find_element(By.CSS_SELECTOR, "article.outbound .delivery").text.startswith(
        "Delivery: sent"
    )
