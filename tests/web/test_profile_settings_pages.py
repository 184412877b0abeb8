"""A profile's other pages in a real browser: resolvers reordered (the database's order checked), retry
variables and policies, the signature's preview and save, and the OAuth2 sign-in against the
test suite's OAuth2 stand-in (tests/servers/oauth_server.py: Microsoft cannot be reached from here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from postroom.core.data import configuration, retry_policies
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import AuditLog, MediaProfile, OAuthGrant
from postroom.core.data.secrets import decrypt_password
from tests.servers.oauth_server import OAuthServer
from tests.web.conftest import Account, LiveServer, page_text, sign_in, submit
from tests.web.profile_helpers import make_profile, stored


def _actions(live_server: LiveServer, name: str) -> list[str]:
    with live_server.app.transaction() as session:
        return list(session.scalars(select(AuditLog.action).where(AuditLog.target == name).order_by(AuditLog.id)))


def test_resolvers_are_reordered_added_and_removed_with_buttons_and_the_database_follows(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    name = make_profile(live_server, resolvers=("case-id", "subject", "customer"))
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}/resolvers")
    submit(browser, browser.find_element(By.ID, "down-case-id"))
    assert [r.resolver_name for r in stored(live_server, name).resolvers] == ["subject", "case-id", "customer"]
    submit(browser, browser.find_element(By.ID, "up-customer"))
    assert [r.resolver_name for r in stored(live_server, name).resolvers] == ["subject", "customer", "case-id"]
    shown = [li.get_attribute("data-resolver") for li in browser.find_elements(By.CSS_SELECTOR, "#resolvers li")]
    assert shown == ["subject", "customer", "case-id"]
    submit(browser, browser.find_element(By.ID, "remove-subject"))
    submit(browser, browser.find_element(By.ID, "add-newest-open"))
    assert [r.resolver_name for r in stored(live_server, name).resolvers] == ["customer", "case-id", "newest-open"]
    assert _actions(live_server, name).count("resolver.reorder") == 4


def test_retry_variables_and_a_category_policy_are_saved_for_the_profile(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}/retry")
    field = browser.find_element(By.ID, "max_retry_count")
    field.clear()
    field.send_keys("7")
    submit(browser, browser.find_element(By.ID, "save-variables"))
    assert "maxRetryCount=7" in page_text(browser)
    with live_server.app.transaction() as session:
        profile_id = session.scalars(select(MediaProfile.id).where(MediaProfile.name == name)).one()
        assert configuration.retry_settings(session, profile_id).max_retry_count == 7

    field = browser.find_element(By.ID, "max_retry_count")
    field.clear()
    field.send_keys("100000")  # beyond the range: the core's refusal, nothing saved
    submit(browser, browser.find_element(By.ID, "save-variables"))
    assert "max retry count" in browser.find_element(By.ID, "form-error").text
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-category="mailbox error"]')
    Select(row.find_element(By.NAME, "policy")).select_by_value("no retry")
    submit(browser, row.find_element(By.CSS_SELECTOR, 'button[value="set"]'))
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-category="mailbox error"]')
    assert "no retry" in row.text and "profile" in row.text
    with live_server.app.transaction() as session:
        assert configuration.retry_settings(session, profile_id).max_retry_count == 7
        table = {r.category.value: r for r in retry_policies.table(session, DEFAULT_CONTACT_CENTER_ID, profile_id)}
        assert (table["mailbox error"].policy, table["mailbox error"].source) == ("no retry", "profile")
    assert _actions(live_server, name) == ["retry.variables", "retry.set-policy"]


def test_the_signature_preview_is_sanitised_and_filled_and_saving_stores_the_sanitised_html(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}/signature")
    typed = (
        '<p onclick="steal()">Regards, {agent_name} for {customer_name}<script>alert(1)</script> '
        '<a href="javascript:alert(2)">x</a> {profile_name} {no_such_placeholder}</p>'
    )
    browser.find_element(By.ID, "signature").send_keys(typed)
    submit(browser, browser.find_element(By.ID, "preview"))
    preview = browser.find_element(By.ID, "signature-preview")
    assert preview.text == f"Regards, {operator.name} for Jane Customer x {name} {{no_such_placeholder}}"
    markup = preview.get_attribute("innerHTML") or ""
    assert "script" not in markup and "onclick" not in markup and "javascript:" not in markup
    assert stored(live_server, name).signature_html is None  # a preview saves nothing
    browser.find_element(By.ID, "position-after").click()
    submit(browser, browser.find_element(By.ID, "save-signature"))
    assert f"Signature of profile {name!r} saved." in page_text(browser)
    profile = stored(live_server, name)
    assert profile.signature_position == "after"
    assert profile.signature_html is not None and "{agent_name}" in profile.signature_html
    assert "script" not in profile.signature_html and "onclick" not in profile.signature_html
    assert _actions(live_server, name) == ["profile.signature"]


def _connect_form(browser: webdriver.Chrome, oauth_server: OAuthServer, flow: str, client_id: str, tenant: str) -> None:
    Select(browser.find_element(By.ID, "provider")).select_by_visible_text("microsoft")
    Select(browser.find_element(By.ID, "flow")).select_by_visible_text(flow)
    browser.find_element(By.ID, "client_id").send_keys(client_id)
    browser.find_element(By.ID, "tenant").send_keys(tenant)
    browser.find_element(By.ID, "authority").send_keys(oauth_server.url)
    browser.find_element(By.ID, "ca_file").send_keys(str(oauth_server.ca_file))


def test_microsoft_client_credentials_connect_shows_status_without_secrets_and_disconnects(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    oauth_server: OAuthServer,
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    client = oauth_server.issuer.register_client()
    assert client.secret is not None
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}/oauth")
    _connect_form(browser, oauth_server, "client-credentials", client.client_id, client.tenant)
    browser.find_element(By.ID, "client_secret").send_keys(client.secret)
    submit(browser, browser.find_element(By.ID, "connect"))
    status = browser.find_element(By.ID, "oauth-status").text
    assert "client-credentials" in status and client.client_id in status
    with live_server.app.transaction() as session:
        grant = session.scalars(select(OAuthGrant).join(MediaProfile).where(MediaProfile.name == name)).one()
        token = decrypt_password(grant.access_token_encrypted)
    assert token and oauth_server.verify(token) is not None
    for secret in (client.secret, token):
        assert secret not in browser.page_source
    submit(browser, browser.find_element(By.ID, "disconnect"))
    assert f"Profile {name!r} is signed out; its tokens are deleted." in page_text(browser)
    with live_server.app.transaction() as session:
        assert session.scalars(select(OAuthGrant).join(MediaProfile).where(MediaProfile.name == name)).first() is None
    assert _actions(live_server, name) == ["oauth.connect", "oauth.disconnect"]


def test_microsoft_device_code_shows_the_code_and_the_grant_arrives_once_the_user_signs_in(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    oauth_server: OAuthServer,
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    client = oauth_server.issuer.register_client(public=True)
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}/oauth")
    _connect_form(browser, oauth_server, "device-code", client.client_id, client.tenant)
    submit(browser, browser.find_element(By.ID, "connect"))
    said = browser.find_element(By.ID, "device-code").text
    found = re.search(r"open (\S+) and enter the code (\w+)", said)
    assert found and found.group(1) == f"{oauth_server.url}/devicelogin", said
    oauth_server.issuer.approve(found.group(2), "carla@example.org")

    def signed_in(driver: webdriver.Chrome) -> bool:
        driver.refresh()
        return "carla@example.org" in driver.find_element(By.ID, "oauth-status").text

    WebDriverWait(browser, 60, poll_frequency=0.5).until(signed_in)
    assert "device-code" in browser.find_element(By.ID, "oauth-status").text
    assert _actions(live_server, name) == ["oauth.connect"]


def test_google_service_account_key_pasted_in_the_form_signs_in_and_is_never_shown(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    oauth_server: OAuthServer,
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    key = oauth_server.issuer.register_service_account()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}/oauth")
    Select(browser.find_element(By.ID, "provider")).select_by_visible_text("google")
    Select(browser.find_element(By.ID, "flow")).select_by_visible_text("service-account")
    browser.execute_script("arguments[0].value = arguments[1];", browser.find_element(By.ID, "service_account_key"), json.dumps(key))
    browser.find_element(By.ID, "account").send_keys("dana@example.org")
    browser.find_element(By.ID, "authority").send_keys(oauth_server.url)
    browser.find_element(By.ID, "ca_file").send_keys(str(oauth_server.ca_file))
    submit(browser, browser.find_element(By.ID, "connect"))
    status = browser.find_element(By.ID, "oauth-status").text
    assert "service-account" in status and "dana@example.org" in status and key["client_id"] in status
    assert oauth_server.issuer.count(key["client_email"], "jwt_bearer") == 1
    assert "PRIVATE KEY" not in browser.page_source
    with live_server.app.transaction() as session:
        grant = session.scalars(select(OAuthGrant).join(MediaProfile).where(MediaProfile.name == name)).one()
        assert b"PRIVATE KEY" not in (grant.client_secret_encrypted or b"")
        entry = session.scalars(select(AuditLog).where(AuditLog.target == name)).one()
        assert entry.action == "oauth.connect" and "PRIVATE KEY" not in json.dumps(entry.detail)


def test_the_contact_centres_table_is_chosen_and_reset_on_the_retry_policies_page(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    submit(browser, browser.find_element(By.LINK_TEXT, "Retry policies"))
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-category="unknown host"]')
    Select(row.find_element(By.NAME, "policy")).select_by_value("patient retry")
    submit(browser, row.find_element(By.CSS_SELECTOR, 'button[value="set"]'))
    with live_server.app.transaction() as session:
        table = {r.category.value: r for r in retry_policies.table(session, DEFAULT_CONTACT_CENTER_ID)}
    assert (table["unknown host"].policy, table["unknown host"].source) == ("patient retry", "contact centre")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-category="unknown host"]')
    submit(browser, row.find_element(By.CSS_SELECTOR, 'button[value="reset"]'))
    with live_server.app.transaction() as session:
        table = {r.category.value: r for r in retry_policies.table(session, DEFAULT_CONTACT_CENTER_ID)}
        actions = list(session.scalars(select(AuditLog.action).where(AuditLog.actor == operator.name).order_by(AuditLog.id)))
    assert table["unknown host"].source == "default"
    assert actions == ["retry.set-policy", "retry.reset"]
