"""The ``ews`` protocol's mailbox and sender: Microsoft Exchange Web Services through exchangelib.

Choices an operator should know (each explained where it is made): the login method is negotiated
with the server; deleted mail goes to the recoverable-items dumpster; sent mail is saved to Sent
Items by Exchange itself; switching TLS verification off applies per EWS server, not per profile.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

from exchangelib import UTC, Account, EWSDateTime, ExtendedProperty, Message
from exchangelib.errors import ErrorFolderNotFound, ErrorItemNotFound, EWSError, ResponseMessageError
from exchangelib.folders import SHALLOW, DeletedItems, Drafts, Inbox, JunkEmail, Outbox, SentItems
from exchangelib.folders.queryset import SingleFolderQuerySet
from exchangelib.items import SOFT_DELETE
from exchangelib.properties import Fields

from postroom.plugins.protocols.base import (
    ConnectionSettings,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolError,
    Sender,
    SendFailure,
    SendReport,
)
from postroom.plugins.protocols.ews_connection import connect, describe_failure, endpoint_url, network_cause

#: Names of Exchange's well-known folders. They are found by distinguished id, so "Inbox" works
#: whatever language the mailbox shows its folder names in.
_WELL_KNOWN = {
    "inbox": Inbox,
    "sent items": SentItems,
    "sentitems": SentItems,
    "sent": SentItems,
    "drafts": Drafts,
    "deleted items": DeletedItems,
    "deleteditems": DeletedItems,
    "junk email": JunkEmail,
    "junkemail": JunkEmail,
    "junk": JunkEmail,
    "outbox": Outbox,
}

#: EWS response codes of a refused send, with the RFC 3463 status that means the same, put in
#: front of the text so that the send-error classifier sorts them like an SMTP reply.
_ENHANCED_STATUS = {
    "ErrorInvalidRecipients": "5.1.1",
    "ErrorMailRecipientNotFound": "5.1.1",
    "ErrorInvalidSmtpAddress": "5.1.3",
    "ErrorQuotaExceeded": "4.2.2",
    "ErrorMailboxStoreUnavailable": "4.3.2",
    "ErrorMessageSizeExceeded": "5.3.4",
    "ErrorServerBusy": "4.4.5",
    "ErrorSubmissionQuotaExceeded": "4.4.5",
    "ErrorMimeContentConversionFailed": "5.6.0",
    "ErrorSendAsDenied": "5.7.1",
    "ErrorMessageSubmissionBlocked": "5.7.1",
    "ErrorAccessDenied": "5.7.1",
}


class _MessageFlags(ExtendedProperty):
    """PidTagMessageFlags; set to "read" on an appended copy so Exchange does not show it as a draft."""

    property_tag = 0x0E07
    property_type = "Integer"


class _StoredCopy(Message):
    """A Message that carries the message flags; its own FIELDS, so exchangelib's Message is untouched."""

    FIELDS = Fields(*Message.FIELDS)


_StoredCopy.register("message_flags", _MessageFlags)
MSGFLAG_READ = 0x1


def _refusal(error: ResponseMessageError) -> str:
    """The text of a refused send: the EWS response code, with an RFC 3463 status where one fits."""
    code = type(error).__name__
    status = _ENHANCED_STATUS.get(code)
    text = f"{code}: {error}".rstrip(": ")
    return f"{status} {text}" if status else text


def _child(parent: Any, name: str) -> Any:
    """The direct sub-folder of ``parent`` named ``name`` (case-insensitive), or None."""
    for folder in SingleFolderQuerySet(account=parent.account, folder=parent).depth(SHALLOW).only("name"):
        if isinstance(folder, Exception):
            raise folder
        if (folder.name or "").casefold() == name.casefold():
            return folder
    return None


def _resolve_folder(account: Account, path: str, where: str) -> Any:
    """Find a folder by a path such as ``Inbox/Support``.

    The first part is a well-known folder (Inbox, Sent Items, Drafts, Deleted Items, Junk Email,
    Outbox; found by Exchange's distinguished id, so a German "Posteingang" mailbox works too), or
    a folder at the top of the mailbox, or else a sub-folder of the Inbox. Names match
    case-insensitively.
    """
    first, *rest = [part.strip() for part in path.split("/") if part.strip()] or ["Inbox"]
    well_known = _WELL_KNOWN.get(first.casefold())
    folder: Any
    if well_known is not None:
        try:
            folder = account.root.get_default_folder(well_known)
        except ErrorFolderNotFound:
            folder = None
    else:
        folder = _child(account.msg_folder_root, first) or _child(account.inbox, first)
    for name in rest:
        if folder is None:
            break
        folder = _child(folder, name)
    if folder is None:
        raise ProtocolError(
            f"The folder {path!r} does not exist in the mailbox {account.primary_smtp_address!r} "
            f"on the {where}.",
            "folder",
        )
    return folder


# --- fetching -------------------------------------------------------------------------------------


class EwsMailbox(Mailbox):
    """A session on one folder of an Exchange mailbox: the login user's own (``username`` as address)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._endpoint = endpoint_url(settings)
        self._address = settings.username or ""
        if "@" not in self._address:
            raise ProtocolError(
                f"The EWS mailbox of profile {settings.profile_name!r} is named by its user name, "
                f"which must be an email address (not {self._address!r}).",
                "auth",
            )
        self._path = settings.folder or "Inbox"
        self._folders: dict[str, Any] = {}
        with self._guard():
            self._account = connect(settings, self._endpoint, self._address)
            self._folder = self._resolve(self._path)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (EWSError, OSError) as error:
            raise describe_failure(error, self._settings, self._endpoint, self._address) from error

    def _resolve(self, path: str) -> Any:
        key = path.casefold()
        if key not in self._folders:
            self._folders[key] = _resolve_folder(self._account, path, f"EWS server {self._endpoint}")
        return self._folders[key]

    def list_mail(self, since: date | None) -> list[MailRef]:
        # "Received on or after that day" is taken in UTC: EWS compares instants, not calendar days.
        query = self._folder.all()
        if since is not None:
            start = EWSDateTime(since.year, since.month, since.day, tzinfo=UTC)
            query = query.filter(datetime_received__gte=start)
        refs = []
        with self._guard():
            for row in query.order_by("datetime_received").values_list("id", "size"):
                if isinstance(row, Exception):
                    raise row
                item_id, size = row
                refs.append(MailRef(key=item_id, size=size))
        return refs

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        keys = list(keys)
        if not keys:
            return
        with self._guard():
            # One GetItem per batch; answers come back in the order asked.
            items = self._account.fetch(
                ids=[(key, None) for key in keys], folder=self._folder, only_fields=["mime_content"]
            )
            for key, item in zip(keys, items, strict=True):
                if isinstance(item, ErrorItemNotFound):
                    continue
                if isinstance(item, Exception):
                    raise item
                yield FetchedMail(key=key, raw=item.mime_content or b"")

    def delete(self, keys: Sequence[str]) -> None:
        """Soft-delete the mails: they go to the mailbox's recoverable items, not to Deleted Items.

        Exchange purges recoverable items after its retention period (14 days by default), so a
        busy contact-centre mailbox neither fills Deleted Items nor its quota, and a mistake can
        still be undone with Outlook's "Recover deleted items".
        """
        keys = list(keys)
        if not keys:
            return
        with self._guard():
            results = self._account.bulk_delete(ids=[(key, None) for key in keys], delete_type=SOFT_DELETE)
            for result in results:
                # Already gone (deleted by someone else, or by us before a crash) is what we wanted.
                if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                    raise result

    def check(self) -> None:
        with self._guard():
            try:
                self._folder.refresh()
            except ErrorFolderNotFound:
                raise ProtocolError(
                    f"The folder {self._path!r} no longer exists in the mailbox {self._address!r} "
                    f"on the EWS server {self._endpoint}.",
                    "folder",
                ) from None

    def append(self, raw: bytes, folder: str) -> None:
        with self._guard():
            copy = _StoredCopy(
                account=self._account,
                folder=self._resolve(folder),
                mime_content=raw,
                is_read=True,
                message_flags=MSGFLAG_READ,
            )
            copy.save()

    def close(self) -> None:
        # The Protocol stays cached (it knows the login method and version); its connections go.
        account = getattr(self, "_account", None)
        if account is not None:
            account.protocol.close()


# --- sending --------------------------------------------------------------------------------------


class EwsSender(Sender):
    """Sends through Exchange, which itself saves the copy (``SendAndSaveCopy``) in the outgoing folder.

    The outgoing folder defaults to Sent Items. The sending mailbox is the login user's when the
    user name is an email address, else the mail's envelope sender (the profile's send-from
    address); a From header naming another mailbox needs Exchange's "Send As" right there.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._endpoint = endpoint_url(settings)
        self._mailboxes: dict[str, tuple[Account, Any]] = {}
        username = settings.username or ""
        if "@" in username:
            self._mailbox_for(username)  # logs in now, as open_sender promises

    def _failure(self, error: BaseException, address: str) -> SendFailure:
        if isinstance(error, ResponseMessageError) and network_cause(error) is None:
            return SendFailure(_refusal(error), kind="protocol")
        described = describe_failure(error, self._settings, self._endpoint, address)
        return SendFailure(str(described), kind=described.kind)

    def _mailbox_for(self, envelope_from: str) -> tuple[Account, Any]:
        """The sending account and the folder its copies go to."""
        username = self._settings.username or ""
        address = (username if "@" in username else envelope_from).lower()
        if "@" not in address:
            raise SendFailure(
                f"Profile {self._settings.profile_name!r} sends through EWS as a mailbox, but neither its "
                f"user name nor its send-from address is an email address.",
                kind="internal",
            )
        if address not in self._mailboxes:
            try:
                account = connect(self._settings, self._endpoint, address)
                where = f"EWS server {self._endpoint}"
                copies = _resolve_folder(account, self._settings.folder or "Sent Items", where)
            except (EWSError, OSError) as error:
                raise self._failure(error, address) from error
            except ProtocolError as error:
                raise SendFailure(str(error), kind=error.kind) from error
            self._mailboxes[address] = (account, copies)
        return self._mailboxes[address]

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        """Submit the mail to Exchange, which takes or refuses it as a whole.

        Exchange answers a submission with one response, not one per recipient (even
        ``ErrorInvalidRecipients`` names none), so every refusal is a failure of the whole send
        and the report never lists a refused recipient.
        """
        account, copies = self._mailbox_for(envelope_from)
        message = Message(
            account=account,
            folder=copies,
            mime_content=raw,
            bcc_recipients=_envelope_only(raw, recipients) or None,
        )
        try:
            message.send_and_save()
        except (EWSError, OSError) as error:
            raise self._failure(error, account.primary_smtp_address) from error
        return SendReport()

    def close(self) -> None:
        for account, _ in self._mailboxes.values():
            account.protocol.close()
        self._mailboxes.clear()


def _envelope_only(raw: bytes, recipients: Sequence[str]) -> list[str]:
    """The envelope recipients that are not in the mail's To or Cc header.

    Exchange delivers to the addresses in the MIME headers; a recipient only in the SMTP-style
    envelope (a Bcc) must be given to it as a Bcc recipient.
    """
    headers = email.message_from_bytes(raw, policy=email.policy.compat32)
    visible = [str(v) for name in ("To", "Cc") for v in headers.get_all(name, [])]
    shown = {address.lower() for _, address in email.utils.getaddresses(visible)}
    return [r for r in recipients if r.lower() not in shown]
