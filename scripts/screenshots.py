"""Screenshots of the console's main pages: ``python -m scripts.screenshots [--out docs/screenshots]``.

Runs ``postroom demo`` in a temporary home, serves it with ``postroom web`` on a free port, signs in
with the credentials the demo printed in Debian's headless Chromium (Selenium, the system
chromedriver; nothing is downloaded) and writes one PNG per page. A page this checkout does not have
(404) is skipped with a message. Needs the test extras (``pip install -e '.[test]'``: Selenium).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH = 1280


def postroom_command() -> list[str]:
    """``postroom`` next to this Python (the virtual environment's), else ``python -m postroom``."""
    script = Path(sys.executable).parent / "postroom"
    return [str(script)] if script.exists() else [sys.executable, "-m", "postroom"]


def run_demo(home: Path) -> tuple[str, str]:
    """Run ``postroom demo --home HOME``; the console account's name and password it printed."""
    done = subprocess.run(
        [*postroom_command(), "demo", "--home", str(home)], capture_output=True, text=True, check=True
    )
    found = re.search(r"sign in as '(\S+)' with the password (\S+) ", done.stdout)
    if found is None:
        raise SystemExit(f"postroom demo printed no console account:\n{done.stdout}")
    return found.group(1), found.group(2)


def start_console(home: Path) -> tuple[subprocess.Popen[str], str]:
    """``postroom web --listen 127.0.0.1:0`` on the demo's home; the process and its URL."""
    env = {**os.environ, "POSTROOM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [*postroom_command(), "web", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    found = re.search(r"serving the console on (http://\S+)/ ", line)
    if found is None:
        server.terminate()
        raise SystemExit(f"postroom web did not start: {line}")
    return server, found.group(1)


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def status(driver: webdriver.Chrome, url: str) -> int:
    """The HTTP status of ``url`` for the browser's session (Selenium does not show it)."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"Cookie": cookie}), timeout=30
        ) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def click(driver: webdriver.Chrome, element_id: str) -> None:
    button = driver.find_element(By.ID, element_id)
    button.click()
    WebDriverWait(driver, 30).until(staleness_of(button))


def capture(driver: webdriver.Chrome, path: Path) -> None:
    """The whole page, however long: the window is made as tall as the document first."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    chrome = int(driver.execute_script("return window.outerHeight - window.innerHeight"))
    driver.set_window_size(WIDTH, max(600, min(height + chrome, 4000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 900)
    print(f"wrote {path}")


def sign_in(driver: webdriver.Chrome, base: str, name: str, password: str) -> None:
    driver.get(f"{base}/signin")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    click(driver, "sign-in")


def preview_reply(driver: webdriver.Chrome) -> None:
    """On a ticket page: write an answer and ask for the preview (nothing is queued)."""
    driver.find_element(By.ID, "body").send_keys(
        "Dear Alice,\n\nthe replacement kettle left our warehouse today."
    )
    click(driver, "preview-reply")
    driver.execute_script("document.getElementById('preview').scrollIntoView()")


#: (file name, path, what to do on the page before the picture), in the order shown in the README.
PAGES: list[tuple[str, str, Callable[[webdriver.Chrome], None] | None]] = [
    ("profiles.png", "/profiles", None),
    ("profile-form.png", "/profiles/new", None),
    ("inbox.png", "/inbox", None),
    ("ticket.png", "/tickets/4", None),
    ("reply-preview.png", "/tickets/1", preview_reply),
    ("outbox.png", "/outbox", None),
    ("audit.png", "/audit", None),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.screenshots", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="Where the PNGs go.")
    out: Path = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="postroom-screenshots-") as temporary:
        home = Path(temporary) / "demo"
        name, password = run_demo(home)
        server, base = start_console(home)
        driver = browser()
        try:
            driver.get(f"{base}/signin")
            driver.find_element(By.ID, "name").send_keys(name)
            capture(driver, out / "signin.png")
            sign_in(driver, base, name, password)
            for filename, path, action in PAGES:
                code = status(driver, f"{base}{path}")
                if code != 200:
                    print(f"skipped {filename}: {path} answers {code} in this checkout")
                    continue
                driver.get(f"{base}{path}")
                if action is not None:
                    action(driver)
                capture(driver, out / filename)
        finally:
            driver.quit()
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
