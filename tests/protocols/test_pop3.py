"""The pop3 and pop3s protocols against a real Dovecot: UIDL keys, the Date filter, DELE at QUIT, failures."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta

import pytest

from postroom.core.contract.protocols import ProtocolError
from postroom.plugins.protocols import pop3
from postroom.plugins.protocols.pop3 import Pop3Protocol, Pop3sProtocol
from tests.servers.dovecot import Dovecot
from tests.support.mail import make_mail


def test_pop3_lists_fetches_and_deletes_mail_after_stls(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("pop")
    mails = [make_mail(f"Order {n}") for n in range(3)]
    dovecot.deliver_many(user, mails)

    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        refs = mailbox.list_mail(None)
        # Dovecot's UIDLs here are UID and UIDVALIDITY in hex (pop3_uidl_format = %08Xu%08Xv).
        assert all(re.fullmatch(r"[0-9a-fA-F]{16}", ref.key) for ref in refs), refs
        assert [ref.size for ref in refs] == [len(mail) for mail in mails]
        assert [mail.raw for mail in mailbox.fetch([ref.key for ref in refs])] == mails
        mailbox.delete([refs[0].key])
        # POP3 deletes only at QUIT, when the mailbox is closed.
        assert dovecot.count(user) == 3

    assert dovecot.fetch_all(user) == mails[1:]


def test_pop3_verifies_the_certificate_it_gets_through_stls(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("stls")

    with pytest.raises(ProtocolError) as refused:
        Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3", tls_verify=True))

    assert refused.value.kind == "tls"
    assert "--no-tls-verify" in str(refused.value)


def test_pop3s_refuses_a_self_signed_certificate_and_says_how_to_switch_verification_off(
    dovecot: Dovecot,
) -> None:
    user, _ = dovecot.new_user("pop3s")

    with pytest.raises(ProtocolError) as refused:
        Pop3sProtocol().open_mailbox(dovecot.settings(user, "pop3s", tls_verify=True, profile_name="sales"))

    assert refused.value.kind == "tls"
    assert f"{dovecot.host}:{dovecot.pop3s_port}" in str(refused.value)
    assert "postroom profile modify sales --no-tls-verify" in str(refused.value)


def test_pop3s_fetches_with_verification_switched_off(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("pop3s")
    mail = make_mail("Over TLS")
    dovecot.deliver(user, mail)

    with Pop3sProtocol().open_mailbox(dovecot.settings(user, "pop3s")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        assert [fetched.raw for fetched in mailbox.fetch(keys)] == [mail]


def test_since_keeps_mail_dated_on_or_after_that_day_and_mail_without_a_date(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("since")
    now = datetime.now().astimezone()
    undated = b"From: someone@example.org\r\nSubject: No date\r\n\r\nHi.\r\n"
    garbled = b"From: someone@example.org\r\nDate: last Tuesday-ish\r\nSubject: Odd date\r\n\r\nHi.\r\n"
    mails = [
        make_mail("Old", date=now - timedelta(days=10)),
        make_mail("Three days ago", date=now - timedelta(days=3)),
        undated,
        garbled,
        make_mail("Today", date=now),
    ]
    dovecot.deliver_many(user, mails)

    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        kept = mailbox.list_mail(date.today() - timedelta(days=3))
        everything = mailbox.list_mail(None)
        assert [mail.raw for mail in mailbox.fetch([ref.key for ref in kept])] == mails[1:]

    assert [ref.key for ref in kept] == [ref.key for ref in everything[1:]]


def test_wrong_password_is_reported_as_a_login_failure_naming_the_login(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("wrongpw")

    with pytest.raises(ProtocolError) as refused:
        Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3", password="not-the-password"))

    assert refused.value.kind == "auth"
    assert user in str(refused.value)
    assert f"{dovecot.host}:{dovecot.pop3_port}" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_an_access_token_logs_in_with_xoauth2(dovecot: Dovecot) -> None:
    # Dovecot checks an XOAUTH2 token against the passdb like a password.
    user, password = dovecot.new_user("oauth")
    dovecot.deliver(user, make_mail())

    with Pop3sProtocol().open_mailbox(dovecot.settings(user, "pop3s", access_token=password)) as mailbox:
        assert len(mailbox.list_mail(None)) == 1
    with pytest.raises(ProtocolError) as refused:
        Pop3sProtocol().open_mailbox(dovecot.settings(user, "pop3s", access_token="expired-token"))
    assert refused.value.kind == "auth"
    assert user in str(refused.value)
    assert "expired-token" not in str(refused.value)


def test_a_folder_other_than_the_inbox_is_reported_naming_the_folder(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("folder")

    with pytest.raises(ProtocolError) as missing:
        Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3", folder="Support"))

    assert missing.value.kind == "folder"
    assert "'Support'" in str(missing.value)


def test_delete_removes_exactly_the_given_mails(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("delete")
    mails = [make_mail(f"Mail {n}") for n in range(5)]
    dovecot.deliver_many(user, mails)

    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        mailbox.delete([keys[1], keys[3], "0000DEAD0000BEEF"])

    assert dovecot.fetch_all(user) == [mails[0], mails[2], mails[4]]
    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        assert [ref.key for ref in mailbox.list_mail(None)] == [keys[0], keys[2], keys[4]]


def test_fifty_mails_are_fetched_in_a_batch(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("batch")
    mails = [make_mail(f"Batch {n}", body=f"Mail number {n}.\r\n" * 20) for n in range(50)]
    dovecot.deliver_many(user, mails)

    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        fetched = list(mailbox.fetch(keys))

    assert [mail.key for mail in fetched] == keys
    assert [mail.raw for mail in fetched] == mails


def test_lines_longer_than_poplib_allows_and_leading_dots_survive(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("longline")
    mail = make_mail("Unwrapped HTML", body="<p>" + "x" * 5000 + "</p>\r\n.\r\n..leading dots\r\n")
    dovecot.deliver(user, mail)

    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        assert [fetched.raw for fetched in mailbox.fetch(keys)] == [mail]


def test_mail_deleted_by_another_session_is_skipped_when_fetching(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("vanish")
    dovecot.deliver_many(user, [make_mail("Stays"), make_mail("Goes")])

    with Pop3Protocol().open_mailbox(dovecot.settings(user, "pop3")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        with dovecot.client(user) as other:
            other.select_folder("INBOX")
            other.delete_messages(other.search(["SUBJECT", "Goes"]))
            other.expunge()
        assert [mail.key for mail in mailbox.fetch(keys)] == [keys[0]]


def test_a_port_that_speaks_another_protocol_is_reported_as_such(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("wrongport")
    settings = dataclasses.replace(dovecot.settings(user, "pop3"), port=dovecot.imap_port)

    with pytest.raises(ProtocolError) as failed:
        Pop3Protocol().open_mailbox(settings)

    assert failed.value.kind == "protocol"
    assert "did not greet like a POP3 server" in str(failed.value)


def test_the_module_registers_pop3_and_pop3s_each_with_its_port_and_no_folder() -> None:
    classes = pop3.postroom_register_protocols()

    assert [(cls.NAME, cls.DEFAULT_PORT, cls.DEFAULT_FOLDER, cls.CAN_FETCH) for cls in classes] == [
        ("pop3", 110, None, True),
        ("pop3s", 995, None, True),
    ]
