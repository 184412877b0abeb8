"""The console's test rig: one real browser and one live console per test session.

- ``browser``: Debian's headless Chromium driven by Selenium through the system chromedriver
  (``Service("/usr/bin/chromedriver")``, so Selenium Manager never downloads anything), its cookies
  cleared before each test (every test starts signed out).
- ``live_server``: the real console (``create_app``) served by waitress (``make_server``, as
  ``postroom web`` does) in a background thread on a free port, against a SQLite database copied from the
  session's template as other tests get theirs; the failed sign-ins are forgotten before each test.
- ``sign_in(driver, base_url, name, password)``; ``make_operator`` / ``make_agent`` make accounts.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import delete
from waitress import wasyncore

from postroom.core.app import Postroom
from postroom.core.data import directory
from postroom.core.data.models import SignInFailure
from postroom.web import users
from postroom.web.app import create_app
from postroom.web.server import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Every account the factories make has this password unless the test gives one.
PASSWORD = "correct horse battery"


@dataclass
class LiveServer:
    """The running console: its base URL (no trailing slash) and the :class:`Postroom` behind it."""

    url: str
    app: Postroom


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    role: str


@pytest.fixture(scope="session")
def browser_session() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def web_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("web") / "console.sqlite"
    shutil.copyfile(sqlite_template, path)
    app = Postroom(f"sqlite:///{path}")
    # A key of the test's own: the stored, encrypted key (web_accounts.session_key) is tested on its own,
    # and would need the home's secret key, which each test changes.
    flask_app = create_app(app, secret_key=secrets.token_urlsafe(32), secure_cookies=False)
    server = make_server(flask_app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="postroom-web", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.effective_port}", app)
    finally:
        server.close()
        # The browser may still hold keep-alive connections, which keep waitress's loop going: close them,
        # and stop the request threads, as waitress's own multi-socket server does on close.
        wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown()
        thread.join(30)
        app.dispose()


@pytest.fixture
def live_server(web_server: LiveServer) -> LiveServer:
    """The session's console, with no failed sign-ins counted (every test signs in from 127.0.0.1)."""
    with web_server.app.transaction() as session:
        session.execute(delete(SignInFailure))
    return web_server


@pytest.fixture
def browser(browser_session: webdriver.Chrome, live_server: LiveServer) -> webdriver.Chrome:
    """The session's browser, signed out (its cookies for the console cleared)."""
    browser_session.get(f"{live_server.url}/signin")
    browser_session.delete_all_cookies()
    return browser_session


def sign_in(driver: webdriver.Chrome, base_url: str, name: str, password: str) -> None:
    """Fill in and send the sign-in form (whatever page it leads to)."""
    driver.get(f"{base_url}/signin")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    submit(driver, driver.find_element(By.ID, "sign-in"))


def page_text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def http_status(
    driver: webdriver.Chrome, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """The status and body of a GET (or POST of ``data``) to ``url`` with the browser's cookies:
    what the browser's session gets, with the status Selenium does not show."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    request = urllib.request.Request(url, data=data, headers={"Cookie": cookie, **(headers or {})})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _make_account(server: LiveServer, role: str, queues: list[str], password: str) -> Account:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    with server.app.transaction() as session:
        users.create_user(session, "test", name, password, role, queues, directory.DEFAULT_CONTACT_CENTER_ID)
    return Account(name, password, role)


@pytest.fixture
def make_operator(live_server: LiveServer) -> Callable[..., Account]:
    """``make_operator(password=PASSWORD)``: a new operator account on the live console."""

    def make(password: str = PASSWORD) -> Account:
        return _make_account(live_server, "operator", [], password)

    return make


@pytest.fixture
def make_agent(live_server: LiveServer) -> Callable[..., Account]:
    """``make_agent(queues=(), password=PASSWORD)``: a new agent of the queues named CAMPAIGN/QUEUE
    (made in the live console's database when missing)."""

    def make(queues: tuple[str, ...] = (), password: str = PASSWORD) -> Account:
        with live_server.app.transaction() as session:
            cc = directory.DEFAULT_CONTACT_CENTER_ID
            for spec in queues:
                campaign_name, _, queue_name = spec.partition("/")
                names = {c.name: c for c in directory.list_campaigns(session, cc)}
                campaign = names.get(campaign_name) or directory.add_campaign(session, cc, campaign_name)
                if queue_name not in {q.name for q in campaign.queues}:
                    directory.add_queue(session, campaign, queue_name)
        return _make_account(live_server, "agent", list(queues), password)

    return make


class OtherSite:
    """A second little HTTP server on another port (another origin): serves the pages put in ``pages``."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in site.pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="session")
def other_site() -> Iterator[OtherSite]:
    site = OtherSite()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()


def _new_page_loaded(old: WebElement) -> Callable[[webdriver.Chrome], bool]:
    """The wait's condition: the old document is gone and the new one has loaded."""

    def loaded(driver: webdriver.Chrome) -> bool:
        return bool(staleness_of(old)(driver)) and driver.execute_script("return document.readyState") == "complete"

    return loaded


def submit(driver: webdriver.Chrome, button: WebElement) -> None:
    """Click a form's button and wait until the page it leads to has replaced this one *and loaded*.

    Waiting only for the button to go stale was not enough: a poll that reached chromedriver
    mid-navigation could fail with a generic ``WebDriverException`` ("cannot determine loading
    status", "Node with given id does not belong to the document"), which a loaded machine makes
    likely; and the next command could run on a page still loading. Here the old document's ``<html>`` going stale and ``document.readyState == "complete"`` are
    waited for, polling through those transient errors (a lasting one still ends in a timeout).
    """
    from selenium.common.exceptions import WebDriverException

    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(_new_page_loaded(old))


class _RememberingHasher:
    """The console's Argon2id hasher, with production parameters, remembering its answers for the session.

    Every browser test makes an account (one hash) and signs in (one verify), each a quarter of a
    second of CPU with production parameters; the answers for the same inputs are the same, so they
    are computed once: ``hash(password)`` gives the hash made the first time for that password (a
    real Argon2id hash with the production parameters, as ``users.hash_password`` makes), and
    ``verify(hash, password)`` the first verdict for that pair (a mismatch raises the same error
    again). ``check_needs_rehash`` is argon2's own. Tests that are about hashing with other parameters
    use their own ``PasswordHasher`` (test_cli_users.py).
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.hashes: dict[str, str] = {}
        self.verdicts: dict[tuple[str, str], bool | BaseException] = {}

    def hash(self, password: str) -> str:
        if password not in self.hashes:
            self.hashes[password] = self.real.hash(password)
        return self.hashes[password]

    def verify(self, password_hash: str, password: str) -> bool:
        key = (password_hash, password)
        if key not in self.verdicts:
            try:
                self.verdicts[key] = self.real.verify(password_hash, password)
            except Exception as error:  # VerifyMismatchError and the others: raised again each time
                self.verdicts[key] = error
        verdict = self.verdicts[key]
        if isinstance(verdict, BaseException):
            raise type(verdict)(*verdict.args)
        return verdict

    def check_needs_rehash(self, password_hash: str) -> bool:
        return bool(self.real.check_needs_rehash(password_hash))


@pytest.fixture(scope="session", autouse=True)
def remembering_hasher() -> Iterator[None]:
    """The console's hasher remembers its answers for the session (see :class:`_RememberingHasher`)."""
    real = users._hasher
    users._hasher = _RememberingHasher(real)  # type: ignore[assignment]
    try:
        yield
    finally:
        users._hasher = real
