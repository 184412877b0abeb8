"""The imap and imaps protocols against a real Dovecot: listing, fetching, deleting, appending, failures."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timedelta

import pytest
from imapclient import DELETED

from postroom.core.contract.protocols import ProtocolError
from postroom.plugins.protocols import imap
from postroom.plugins.protocols.imap import ImapProtocol, ImapsProtocol
from tests.servers.dovecot import Dovecot, free_ports
from tests.support.mail import make_mail


def test_imap_lists_fetches_and_deletes_mail_after_starttls(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("imap")
    mails = [make_mail(f"Order {n}") for n in range(3)]
    uids = dovecot.deliver_many(user, mails)

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        refs = mailbox.list_mail(None)
        assert [ref.key.rsplit("/", 1)[1] for ref in refs] == [str(uid) for uid in uids]
        assert all(ref.key.startswith("INBOX/") for ref in refs)
        assert [mail.raw for mail in mailbox.fetch([ref.key for ref in refs])] == mails
        mailbox.delete([refs[0].key])

    assert dovecot.fetch_all(user) == mails[1:]


def test_imap_verifies_the_certificate_it_gets_through_starttls(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("starttls")

    with pytest.raises(ProtocolError) as refused:
        ImapProtocol().open_mailbox(dovecot.settings(user, "imap", tls_verify=True))

    assert refused.value.kind == "tls"


def test_imaps_refuses_a_self_signed_certificate_and_says_how_to_switch_verification_off(
    dovecot: Dovecot,
) -> None:
    user, _ = dovecot.new_user("imaps")

    with pytest.raises(ProtocolError) as refused:
        ImapsProtocol().open_mailbox(dovecot.settings(user, "imaps", tls_verify=True, profile_name="sales"))

    assert refused.value.kind == "tls"
    assert f"{dovecot.host}:{dovecot.imaps_port}" in str(refused.value)
    assert "postroom profile modify sales --no-tls-verify" in str(refused.value)


def test_imaps_fetches_with_verification_switched_off(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("imaps")
    mail = make_mail("Over TLS")
    dovecot.deliver(user, mail)

    with ImapsProtocol().open_mailbox(dovecot.settings(user, "imaps", tls_verify=False)) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        assert [fetched.raw for fetched in mailbox.fetch(keys)] == [mail]


def test_fetching_leaves_mail_unread(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("peek")
    dovecot.deliver(user, make_mail())

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        list(mailbox.fetch([ref.key for ref in mailbox.list_mail(None)]))

    assert all(b"\\Seen" not in flags for flags in dovecot.flags_all(user))


def test_since_lists_only_mail_received_on_or_after_that_day(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("since")
    now = datetime.now().astimezone()
    dovecot.deliver(user, make_mail("Old"), date=now - timedelta(days=10))
    dovecot.deliver(user, make_mail("Three days ago"), date=now - timedelta(days=3))
    recent = dovecot.deliver(user, make_mail("Today"), date=now)

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        three_days = mailbox.list_mail(date.today() - timedelta(days=3))
        today = mailbox.list_mail(date.today())

    assert len(three_days) == 2
    assert [ref.key.rsplit("/", 1)[1] for ref in today] == [str(recent)]


def test_wrong_password_is_reported_as_a_login_failure_naming_the_login(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("wrongpw")

    with pytest.raises(ProtocolError) as refused:
        ImapProtocol().open_mailbox(dovecot.settings(user, "imap", password="not-the-password"))

    assert refused.value.kind == "auth"
    assert user in str(refused.value)
    assert f"{dovecot.host}:{dovecot.imap_port}" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_an_access_token_logs_in_with_xoauth2(dovecot: Dovecot) -> None:
    # Dovecot checks an XOAUTH2 token against the passdb like a password.
    user, password = dovecot.new_user("oauth")
    dovecot.deliver(user, make_mail())

    with ImapsProtocol().open_mailbox(dovecot.settings(user, "imaps", access_token=password)) as mailbox:
        assert len(mailbox.list_mail(None)) == 1
    with pytest.raises(ProtocolError) as refused:
        ImapsProtocol().open_mailbox(dovecot.settings(user, "imaps", access_token="expired-token"))
    assert refused.value.kind == "auth"
    assert "expired-token" not in str(refused.value)


def test_a_missing_folder_is_reported_naming_the_folder(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("nofolder")

    with pytest.raises(ProtocolError) as missing:
        ImapProtocol().open_mailbox(dovecot.settings(user, "imap", folder="Support"))

    assert missing.value.kind == "folder"
    assert "'Support'" in str(missing.value)


def test_check_fails_once_the_folder_is_gone(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("check")
    dovecot.create_folder(user, "Support")

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap", folder="Support")) as mailbox:
        mailbox.check()
        with dovecot.client(user) as other:
            other.delete_folder("Support")
        with pytest.raises(ProtocolError) as missing:
            mailbox.check()

    assert missing.value.kind == "folder"


def test_keys_name_the_folder_they_came_from(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("subfolder")
    mail = make_mail("In a subfolder")
    dovecot.deliver(user, mail, folder="Support.Germany")

    settings = dovecot.settings(user, "imap", folder="Support.Germany")
    with ImapProtocol().open_mailbox(settings) as mailbox:
        (ref,) = mailbox.list_mail(None)
        assert ref.key.startswith("Support.Germany/")
        assert [fetched.raw for fetched in mailbox.fetch([ref.key])] == [mail]
        # A key of another folder or an older UIDVALIDITY never matches a mail here.
        folder, uidvalidity, uid = ref.key.rsplit("/", 2)
        assert list(mailbox.fetch([f"INBOX/{uidvalidity}/{uid}", f"{folder}/1/{uid}"])) == []


def test_append_stores_a_read_copy_and_creates_the_folder(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("append")
    sent = make_mail("Re: Order 1")

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        mailbox.append(sent, "Sent")
        mailbox.append(sent, "Sent")

    assert dovecot.fetch_all(user, "Sent") == [sent, sent]
    assert all(b"\\Seen" in flags for flags in dovecot.flags_all(user, "Sent"))


def test_delete_removes_exactly_the_given_mails(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("delete")
    mails = [make_mail(f"Mail {n}") for n in range(5)]
    dovecot.deliver_many(user, mails)

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        mailbox.delete([keys[1], keys[3]])
        assert [ref.key for ref in mailbox.list_mail(None)] == [keys[0], keys[2], keys[4]]

    assert dovecot.fetch_all(user) == [mails[0], mails[2], mails[4]]


def test_without_uidplus_delete_never_expunges_mail_another_client_flagged(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("nouidplus", extra_fields="userdb_imap_capability=IMAP4rev1")
    mails = [make_mail(f"Mail {n}") for n in range(3)]
    theirs, ours, _ = dovecot.deliver_many(user, mails)

    with dovecot.client(user) as other:
        other.select_folder("INBOX")
        other.add_flags([theirs], [DELETED])
        with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
            assert isinstance(mailbox, imap.ImapMailbox)
            assert not mailbox.client.has_capability("UIDPLUS")
            mailbox.delete([f"INBOX/{mailbox.uidvalidity}/{ours}"])
            assert dovecot.count(user) == 3
            # Once the other client changes its mind, closing expunges what we deleted.
            other.remove_flags([theirs], [DELETED])

    assert dovecot.fetch_all(user) == [mails[0], mails[2]]


def test_without_uidplus_delete_expunges_at_once_when_nothing_else_is_flagged(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("nouidplus", extra_fields="userdb_imap_capability=IMAP4rev1")
    mails = [make_mail(f"Mail {n}") for n in range(3)]
    dovecot.deliver_many(user, mails)

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        mailbox.delete([keys[1]])
        assert dovecot.count(user) == 2

    assert dovecot.fetch_all(user) == [mails[0], mails[2]]


def test_fifty_mails_are_fetched_in_one_uid_fetch(dovecot: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    user, _ = dovecot.new_user("batch")
    mails = [make_mail(f"Batch {n}", body=f"Mail number {n}.\r\n" * 20) for n in range(50)]
    dovecot.deliver_many(user, mails)

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        # imapclient logs every command it sends at debug level: count the FETCH commands.
        with caplog.at_level(logging.DEBUG, logger="imapclient.imaplib"):
            fetched = list(mailbox.fetch(keys))

    assert [mail.key for mail in fetched] == keys
    assert [mail.raw for mail in fetched] == mails
    sent_fetches = [r for r in caplog.records if "> " in r.getMessage() and "UID FETCH" in r.getMessage()]
    assert len(sent_fetches) == 1


def test_mail_that_vanished_is_skipped_when_fetching(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("vanish")
    dovecot.deliver_many(user, [make_mail("Stays"), make_mail("Goes")])

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        with dovecot.client(user) as other:
            other.select_folder("INBOX")
            other.delete_messages([int(keys[1].rsplit("/", 1)[1])])
            other.expunge()
        assert [mail.key for mail in mailbox.fetch(keys)] == [keys[0]]


def test_a_closed_port_is_a_connection_failure_naming_the_server(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("closed")
    (port,) = free_ports(1)
    settings = dataclasses.replace(dovecot.settings(user, "imap"), port=port)

    with pytest.raises(ProtocolError) as failed:
        ImapProtocol().open_mailbox(settings)

    assert failed.value.kind == "connection"
    assert f"127.0.0.1:{port}" in str(failed.value)


def test_a_port_that_speaks_another_protocol_is_reported_as_such(dovecot: Dovecot) -> None:
    user, _ = dovecot.new_user("wrongport")
    settings = dataclasses.replace(dovecot.settings(user, "imap"), port=dovecot.pop3_port)

    with pytest.raises(ProtocolError) as failed:
        ImapProtocol().open_mailbox(settings)

    assert failed.value.kind == "protocol"
    assert "did not greet like an IMAP server" in str(failed.value)


def test_the_module_registers_imap_and_imaps_each_with_its_port_and_the_inbox_as_default_folder() -> None:
    classes = imap.postroom_register_protocols()

    assert [(cls.NAME, cls.DEFAULT_PORT, cls.DEFAULT_FOLDER, cls.CAN_FETCH) for cls in classes] == [
        ("imap", 143, "INBOX", True),
        ("imaps", 993, "INBOX", True),
    ]


def _spy_on_searches(mailbox: imap.ImapMailbox, monkeypatch: pytest.MonkeyPatch) -> list[list[object]]:
    """The criteria of every SEARCH the mailbox sends."""
    searches: list[list[object]] = []
    real = mailbox.client.search

    def search(criteria: list[object], *args: object, **kwargs: object) -> object:
        searches.append(list(criteria))
        return real(criteria, *args, **kwargs)

    monkeypatch.setattr(mailbox.client, "search", search)
    return searches


def test_a_kept_folder_listed_again_is_asked_only_for_the_uids_above_the_known_ones(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, _ = dovecot.new_user("kept")
    first = dovecot.deliver_many(user, [make_mail(f"Old {n}") for n in range(3)])
    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        assert len(mailbox.list_mail(None)) == 3
    later = dovecot.deliver_many(user, [make_mail(f"New {n}") for n in range(2)])

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        assert isinstance(mailbox, imap.ImapMailbox)
        searches = _spy_on_searches(mailbox, monkeypatch)
        refs = mailbox.list_mail(None)
    assert [int(ref.key.rsplit("/", 1)[1]) for ref in refs] == first + later
    assert searches == [["UID", f"{first[-1] + 1}:*"]]

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        assert isinstance(mailbox, imap.ImapMailbox)
        searches = _spy_on_searches(mailbox, monkeypatch)
        assert len(mailbox.list_mail(None)) == 5  # nothing new: "n:*" still matches the last UID
    assert searches == [["UID", f"{later[-1] + 1}:*"]]


def test_a_mail_another_client_expunged_makes_the_next_listing_a_whole_one(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, _ = dovecot.new_user("shared")
    uids = dovecot.deliver_many(user, [make_mail(f"Mail {n}") for n in range(3)])
    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        mailbox.list_mail(None)
    with dovecot.client(user) as other:  # a colleague's mail program deletes one and a mail arrives
        other.select_folder("INBOX")
        other.delete_messages([uids[1]])
        other.expunge()
    arrived = dovecot.deliver(user, make_mail("Arrived"))

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        assert isinstance(mailbox, imap.ImapMailbox)
        searches = _spy_on_searches(mailbox, monkeypatch)
        refs = mailbox.list_mail(None)
    assert [int(ref.key.rsplit("/", 1)[1]) for ref in refs] == [uids[0], uids[2], arrived]
    assert searches == [["UID", f"{uids[-1] + 1}:*"], ["ALL"]]


def test_after_deleting_the_next_listing_is_a_whole_one(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, _ = dovecot.new_user("deleting")
    uids = dovecot.deliver_many(user, [make_mail(f"Mail {n}") for n in range(2)])
    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        refs = mailbox.list_mail(None)
        mailbox.delete([refs[0].key])

    with ImapProtocol().open_mailbox(dovecot.settings(user, "imap")) as mailbox:
        assert isinstance(mailbox, imap.ImapMailbox)
        searches = _spy_on_searches(mailbox, monkeypatch)
        assert [int(ref.key.rsplit("/", 1)[1]) for ref in mailbox.list_mail(None)] == [uids[1]]
    assert searches == [["ALL"]]
