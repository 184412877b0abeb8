"""A loopback STAND-IN for a Microsoft Exchange EWS endpoint, for the ``ews`` protocol tests.

No Exchange server can run here, so this small HTTP server answers the EWS SOAP operations the
``ews`` plugin (through exchangelib) really sends, from an in-memory mailbox per user.
"""

from __future__ import annotations

import base64
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.servers.certs import Certificate
from tests.servers.ews_http import ENDPOINT_PATH, EwsHttpServer, start_serving
from tests.servers.ews_mailboxes import (
    DISTINGUISHED,
    NOT_FOUND,
    Deletion,
    Folder,
    Mailbox,
    SentMail,
    SoapFault,
    StoredItem,
    _new_id,
)
from tests.servers.ews_xml import (
    SOAP,
    T,
    _ascending_by_received,
    _children,
    _envelope,
    _error,
    _fault,
    _folder_xml,
    _is_draft,
    _item_xml,
    _m,
    _matches,
    _page,
    _recipients,
    _requested_fields,
    _success,
    _t,
)


class EwsStandIn:
    """The in-memory Exchange stand-in behind the loopback server: mailboxes, folders, items.

    It is not Exchange: it answers GetFolder, FindFolder, FindItem, GetItem, CreateItem,
    DeleteItem and ConvertId (exchangelib's version probe) with the shapes Exchange 2016 uses,
    checks Basic credentials or OAuth2 bearer tokens (a user's, or an application's that names the
    mailbox by impersonation), and records what was sent and deleted.
    """

    def __init__(self) -> None:
        self.endpoint = ""
        self.tls_endpoint = ""
        self.operations: list[tuple[str, str]] = []
        self.unhandled: list[str] = []
        self._mailboxes: dict[str, Mailbox] = {}
        self._refusals: dict[str, tuple[str, str]] = {}
        self._app_tokens: set[str] = set()
        self.impersonated: list[str] = []
        self._lock = threading.RLock()

    # --- what tests call -----------------------------------------------------------------------

    def add_user(self, address: str, password: str, token: str | None = None) -> None:
        """Create (or empty and recreate) the mailbox ``address`` with its distinguished folders.

        ``token``: an OAuth2 access token that logs in as this user.
        """
        with self._lock:
            mailbox = Mailbox(address.lower(), password, token)
            ids: dict[str, str] = {}
            for name, (display, parent) in DISTINGUISHED.items():
                ids[name] = _new_id("F")
                folder = Folder(ids[name], display, ids[parent] if parent else None, distinguished=name)
                mailbox.folders[folder.folder_id] = folder
            self._mailboxes[mailbox.address] = mailbox

    def add_folder(self, user: str, path: str) -> None:
        """Create the folder ``path`` ("Inbox/Support"), with any missing parents."""
        with self._lock:
            mailbox = self._mailbox(user)
            parent = mailbox.by_path("")
            for name in [p for p in path.split("/") if p]:
                existing = [f for f in mailbox.children(parent) if f.name.casefold() == name.casefold()]
                if existing:
                    parent = existing[0]
                    continue
                child = Folder(_new_id("F"), name, parent.folder_id)
                mailbox.folders[child.folder_id] = child
                parent = child

    def deliver(self, user: str, raw: bytes, received: datetime | None = None, folder: str = "Inbox") -> str:
        """Put a received mail into ``folder`` of ``user``'s mailbox; returns its item id."""
        with self._lock:
            item = StoredItem(_new_id("I"), raw, (received or datetime.now(UTC)).astimezone(UTC))
            self._mailbox(user).by_path(folder).items[item.item_id] = item
            return item.item_id

    def items(self, user: str, folder: str = "Inbox") -> list[StoredItem]:
        """The messages in ``folder``, oldest first."""
        with self._lock:
            return sorted(self._mailbox(user).by_path(folder).items.values(), key=lambda i: i.received)

    def sent(self, user: str) -> list[SentMail]:
        with self._lock:
            return list(self._mailbox(user).sent)

    def deletions(self, user: str) -> list[Deletion]:
        with self._lock:
            return list(self._mailbox(user).deletions)

    def refuse(self, address: str, code: str = "ErrorInvalidRecipients", text: str = "") -> None:
        """Make every send to ``address`` fail with this EWS response code."""
        with self._lock:
            self._refusals[address.lower()] = (code, text or f"The recipient {address} is not valid.")

    # --- HTTP entry points ------------------------------------------------------------------------

    def add_app_token(self, token: str) -> None:
        """An application's access token: it may act on any mailbox, named by ExchangeImpersonation."""
        with self._lock:
            self._app_tokens.add(token)

    def authenticate(self, header: str | None, request: bytes = b"") -> Mailbox | None:
        if header and header.startswith("Bearer "):
            return self._bearer(header[7:], request)
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        with self._lock:
            mailbox = self._mailboxes.get(user.lower())
        return mailbox if mailbox is not None and mailbox.password == password else None

    def _bearer(self, token: str, request: bytes) -> Mailbox | None:
        with self._lock:
            if token in self._app_tokens:
                try:
                    found = ET.fromstring(request).find(
                        f".//{{{T}}}ExchangeImpersonation//{{{T}}}PrimarySmtpAddress"
                    )
                except ET.ParseError:
                    return None
                if found is None or not found.text:
                    # No mailbox named (exchangelib's version probe): logged in, but no one's mailbox.
                    return Mailbox("", "")
                self.impersonated.append(found.text.lower())
                return self._mailboxes.get(found.text.lower())
            return next(
                (m for m in self._mailboxes.values() if m.token is not None and m.token == token), None
            )

    def answer(self, mailbox: Mailbox, request: bytes) -> tuple[int, bytes]:
        """Answer one SOAP request: (HTTP status, response envelope)."""
        operation = "?"
        try:
            body = ET.fromstring(request).find(f"{{{SOAP}}}Body")
            if body is None or not len(body):
                raise SoapFault("The request has no SOAP body.")
            payload = body[0]
            operation = payload.tag.rpartition("}")[2]
            with self._lock:
                self.operations.append((mailbox.address, operation))
                handler = getattr(self, f"_op_{operation}", None)
                if handler is None:
                    self.unhandled.append(operation)
                    raise SoapFault(f"The EWS stand-in does not implement {operation}.")
                messages = handler(mailbox, payload)
            response = ET.Element(_m(f"{operation}Response"))
            container = ET.SubElement(response, _m("ResponseMessages"))
            container.extend(messages)
            return 200, _envelope(response)
        except SoapFault as fault:
            return 500, _fault(str(fault))
        except Exception as error:  # a stand-in bug must reach the test as a fault, not a hang
            self.unhandled.append(f"{operation}: {error!r}")
            return 500, _fault(f"The EWS stand-in failed on {operation}: {error!r}")

    # --- operations -------------------------------------------------------------------------------

    def _op_ConvertId(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        # exchangelib's version probe converts a dummy id; Exchange answers that it is malformed.
        return [_error("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")]

    def _op_GetFolder(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        messages = []
        for ref in _children(payload.find(_m("FolderIds"))):
            try:
                folder = self._folder_ref(mailbox, ref)
            except _EwsError as error:
                messages.append(_error("GetFolder", error.code, error.text))
                continue
            message = _success("GetFolder")
            ET.SubElement(message, _m("Folders")).append(_folder_xml(mailbox, folder))
            messages.append(message)
        return messages

    def _op_FindFolder(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        if payload.find(_m("Restriction")) is not None:
            raise SoapFault("The EWS stand-in does not implement FindFolder restrictions.")
        if payload.get("Traversal") != "Shallow":
            raise SoapFault("The EWS stand-in only implements shallow FindFolder.")
        messages = []
        for ref in _children(payload.find(_m("ParentFolderIds"))):
            try:
                parent = self._folder_ref(mailbox, ref)
            except _EwsError as error:
                messages.append(_error("FindFolder", error.code, error.text))
                continue
            found = mailbox.children(parent)
            page, root = _page(payload.find(_m("IndexedPageFolderView")), found)
            folders = ET.SubElement(root, _t("Folders"))
            folders.extend(_folder_xml(mailbox, f) for f in page)
            message = _success("FindFolder")
            message.append(root)
            messages.append(message)
        return messages

    def _op_FindItem(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        if payload.get("Traversal") != "Shallow":
            raise SoapFault("The EWS stand-in only implements shallow FindItem.")
        fields = _requested_fields(payload.find(_m("ItemShape")))
        restriction = payload.find(_m("Restriction"))
        ascending = _ascending_by_received(payload.find(_m("SortOrder")))
        messages = []
        for ref in _children(payload.find(_m("ParentFolderIds"))):
            try:
                folder = self._folder_ref(mailbox, ref)
            except _EwsError as error:
                messages.append(_error("FindItem", error.code, error.text))
                continue
            found = [i for i in folder.items.values() if restriction is None or _matches(restriction[0], i)]
            # Exchange lists newest first unless asked otherwise.
            found.sort(key=lambda i: i.received, reverse=not ascending)
            page, root = _page(payload.find(_m("IndexedPageItemView")), found)
            items = ET.SubElement(root, _t("Items"))
            items.extend(_item_xml(i, fields) for i in page)
            message = _success("FindItem")
            message.append(root)
            messages.append(message)
        return messages

    def _op_GetItem(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        fields = _requested_fields(payload.find(_m("ItemShape")))
        messages = []
        for ref in _children(payload.find(_m("ItemIds"))):
            found = self._item(mailbox, ref.get("Id", ""))
            if found is None:
                messages.append(_error("GetItem", "ErrorItemNotFound", NOT_FOUND))
                continue
            message = _success("GetItem")
            ET.SubElement(message, _m("Items")).append(_item_xml(found[1], fields))
            messages.append(message)
        return messages

    def _op_DeleteItem(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        delete_type = payload.get("DeleteType", "")
        messages = []
        for ref in _children(payload.find(_m("ItemIds"))):
            found = self._item(mailbox, ref.get("Id", ""))
            if found is None:
                messages.append(_error("DeleteItem", "ErrorItemNotFound", NOT_FOUND))
                continue
            folder, item = found
            del folder.items[item.item_id]
            if delete_type == "MoveToDeletedItems":
                trash = mailbox.distinguished("deleteditems")
                assert trash is not None
                moved = StoredItem(_new_id("I"), item.raw, item.received, item.is_draft, item.is_read)
                trash.items[moved.item_id] = moved
            mailbox.deletions.append(Deletion(item.item_id, delete_type))
            messages.append(_success("DeleteItem"))
        return messages

    def _op_CreateItem(self, mailbox: Mailbox, payload: ET.Element) -> list[ET.Element]:
        disposition = payload.get("MessageDisposition", "SaveOnly")
        saved_ref = payload.find(_m("SavedItemFolderId"))
        messages = []
        for elem in _children(payload.find(_m("Items"))):
            try:
                messages.append(self._create(mailbox, elem, disposition, saved_ref))
            except _EwsError as error:
                messages.append(_error("CreateItem", error.code, error.text))
        return messages

    def _create(
        self, mailbox: Mailbox, elem: ET.Element, disposition: str, saved_ref: ET.Element | None
    ) -> ET.Element:
        mime = elem.findtext(_t("MimeContent"))
        if elem.tag != _t("Message") or not mime:
            raise _EwsError("ErrorInvalidRequest", "The stand-in only creates messages from MIME content.")
        raw = base64.b64decode(mime)
        target = None
        if disposition != "SendOnly":
            target = (
                self._folder_ref(mailbox, saved_ref[0])
                if saved_ref is not None and len(saved_ref)
                else mailbox.distinguished("drafts" if disposition == "SaveOnly" else "sentitems")
            )
        if disposition == "SaveOnly":
            assert target is not None
            item = StoredItem(_new_id("I"), raw, datetime.now(UTC), is_draft=_is_draft(elem))
            item.is_read = elem.findtext(_t("IsRead")) in ("true", "1") or not item.is_draft
            target.items[item.item_id] = item
            message = _success("CreateItem")
            created = ET.SubElement(ET.SubElement(message, _m("Items")), _t("Message"))
            ET.SubElement(created, _t("ItemId"), Id=item.item_id, ChangeKey="CQAAAA==")
            return message
        recipients = _recipients(raw, elem)
        if not recipients:
            raise _EwsError("ErrorInvalidRecipients", "At least one recipient is required.")
        for address in recipients:
            if address.lower() in self._refusals:
                raise _EwsError(*self._refusals[address.lower()])
        mailbox.sent.append(SentMail(raw, recipients, saved_copy=target is not None))
        if target is not None:
            copy = StoredItem(_new_id("I"), raw, datetime.now(UTC), is_draft=False, is_read=True)
            target.items[copy.item_id] = copy
        message = _success("CreateItem")
        ET.SubElement(message, _m("Items"))
        return message

    # --- lookups ----------------------------------------------------------------------------------

    def _mailbox(self, user: str) -> Mailbox:
        return self._mailboxes[user.lower()]

    def _folder_ref(self, mailbox: Mailbox, ref: ET.Element) -> Folder:
        owner = mailbox
        address = ref.findtext(f"{_t('Mailbox')}/{_t('EmailAddress')}")
        if address and address.lower() != mailbox.address:
            other = self._mailboxes.get(address.lower())
            if other is None:
                raise _EwsError("ErrorNonExistentMailbox", f"The SMTP address {address} has no mailbox.")
            raise _EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if ref.tag == _t("DistinguishedFolderId"):
            folder = owner.distinguished(ref.get("Id", ""))
        else:
            folder = owner.folders.get(ref.get("Id", ""))
        if folder is None:
            raise _EwsError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return folder

    def _item(self, mailbox: Mailbox, item_id: str) -> tuple[Folder, StoredItem] | None:
        for folder in mailbox.folders.values():
            if item_id in folder.items:
                return folder, folder.items[item_id]
        return None


class _EwsError(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text



@pytest.fixture(scope="session")
def ews_server(certificate: Certificate) -> Iterator[EwsStandIn]:
    """The EWS stand-in, on http://127.0.0.1 (``endpoint``) and https://localhost (``tls_endpoint``).

    Both URLs are full EWS endpoint URLs for a profile's host field. The TLS listener uses the
    session's self-signed certificate, so a client that verifies certificates refuses it.
    """
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name, value in saved.items():
        os.environ[name] = ",".join(v for v in (value, "127.0.0.1,localhost") if v)
    stand_in = EwsStandIn()
    plain, secure = EwsHttpServer(stand_in), EwsHttpServer(stand_in)
    context = certificate.server_context()
    secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
    stand_in.endpoint = f"http://127.0.0.1:{plain.server_address[1]}{ENDPOINT_PATH}"
    stand_in.tls_endpoint = f"https://localhost:{secure.server_address[1]}{ENDPOINT_PATH}"
    threads = [start_serving(plain), start_serving(secure)]
    try:
        yield stand_in
    finally:
        for server in (plain, secure):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
