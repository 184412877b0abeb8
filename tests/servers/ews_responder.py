"""A loopback STAND-IN for a Microsoft Exchange EWS endpoint, for the ``ews`` protocol tests.

No Exchange server can run here, so this small HTTP server answers the EWS SOAP operations the
``ews`` plugin (through exchangelib) really sends, from an in-memory mailbox per user.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import os
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import pytest

from tests.servers.certs import Certificate

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
ENDPOINT_PATH = "/EWS/Exchange.asmx"
REALM = "ews-stand-in"
NOT_FOUND = "The specified object was not found in the store."

#: The distinguished folders every mailbox has: id -> (display name, parent's distinguished id).
DISTINGUISHED = {
    "root": ("", None),
    "msgfolderroot": ("Top of Information Store", "root"),
    "inbox": ("Inbox", "msgfolderroot"),
    "sentitems": ("Sent Items", "msgfolderroot"),
    "deleteditems": ("Deleted Items", "msgfolderroot"),
    "drafts": ("Drafts", "msgfolderroot"),
    "junkemail": ("Junk Email", "msgfolderroot"),
    "outbox": ("Outbox", "msgfolderroot"),
}
#: PidTagMessageFlags: a message created without it (or with MSGFLAG_UNSENT) is a draft, as in Exchange.
MESSAGE_FLAGS_TAG = 0x0E07
MSGFLAG_UNSENT = 0x8

_X = TypeVar("_X")


def _new_id(kind: str) -> str:
    return base64.b64encode(f"{kind}:".encode() + uuid.uuid4().bytes).decode()


def _t(tag: str) -> str:
    return f"{{{T}}}{tag}"


def _m(tag: str) -> str:
    return f"{{{M}}}{tag}"


@dataclass
class StoredItem:
    """One message in a folder of the stand-in mailbox."""

    item_id: str
    raw: bytes
    received: datetime
    is_draft: bool = False
    is_read: bool = False


@dataclass
class SentMail:
    """A message the stand-in accepted for sending: who it went to and whether a copy was saved."""

    raw: bytes
    recipients: list[str]
    saved_copy: bool


@dataclass
class Deletion:
    item_id: str
    delete_type: str


@dataclass
class _Folder:
    folder_id: str
    name: str
    parent_id: str | None
    distinguished: str | None = None
    items: dict[str, StoredItem] = field(default_factory=dict)


@dataclass
class _Mailbox:
    address: str
    password: str
    token: str | None = None
    folders: dict[str, _Folder] = field(default_factory=dict)
    sent: list[SentMail] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)

    def distinguished(self, name: str) -> _Folder | None:
        return next((f for f in self.folders.values() if f.distinguished == name.lower()), None)

    def children(self, parent: _Folder) -> list[_Folder]:
        return [f for f in self.folders.values() if f.parent_id == parent.folder_id]

    def by_path(self, path: str) -> _Folder:
        """Resolve ``Inbox/Support`` below the top of the information store, case-insensitively."""
        folder = self.distinguished("msgfolderroot")
        assert folder is not None
        for name in [p for p in path.split("/") if p]:
            match = [f for f in self.children(folder) if f.name.casefold() == name.casefold()]
            if not match:
                raise KeyError(f"no folder {path!r} in the mailbox of {self.address}")
            folder = match[0]
        return folder


class SoapFault(Exception):
    """A request the stand-in cannot answer; sent back as a SOAP fault so the test sees it."""


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
        self._mailboxes: dict[str, _Mailbox] = {}
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
            mailbox = _Mailbox(address.lower(), password, token)
            ids: dict[str, str] = {}
            for name, (display, parent) in DISTINGUISHED.items():
                ids[name] = _new_id("F")
                folder = _Folder(ids[name], display, ids[parent] if parent else None, distinguished=name)
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
                child = _Folder(_new_id("F"), name, parent.folder_id)
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

    def authenticate(self, header: str | None, request: bytes = b"") -> _Mailbox | None:
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

    def _bearer(self, token: str, request: bytes) -> _Mailbox | None:
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
                    return _Mailbox("", "")
                self.impersonated.append(found.text.lower())
                return self._mailboxes.get(found.text.lower())
            return next(
                (m for m in self._mailboxes.values() if m.token is not None and m.token == token), None
            )

    def answer(self, mailbox: _Mailbox, request: bytes) -> tuple[int, bytes]:
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

    def _op_ConvertId(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
        # exchangelib's version probe converts a dummy id; Exchange answers that it is malformed.
        return [_error("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")]

    def _op_GetFolder(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
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

    def _op_FindFolder(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
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

    def _op_FindItem(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
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

    def _op_GetItem(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
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

    def _op_DeleteItem(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
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

    def _op_CreateItem(self, mailbox: _Mailbox, payload: ET.Element) -> list[ET.Element]:
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
        self, mailbox: _Mailbox, elem: ET.Element, disposition: str, saved_ref: ET.Element | None
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

    def _mailbox(self, user: str) -> _Mailbox:
        return self._mailboxes[user.lower()]

    def _folder_ref(self, mailbox: _Mailbox, ref: ET.Element) -> _Folder:
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

    def _item(self, mailbox: _Mailbox, item_id: str) -> tuple[_Folder, StoredItem] | None:
        for folder in mailbox.folders.values():
            if item_id in folder.items:
                return folder, folder.items[item_id]
        return None


class _EwsError(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# --- XML shapes ---------------------------------------------------------------------------------


def _envelope(response: ET.Element) -> bytes:
    envelope = ET.Element(f"{{{SOAP}}}Envelope")
    header = ET.SubElement(envelope, f"{{{SOAP}}}Header")
    ET.SubElement(
        header,
        _t("ServerVersionInfo"),
        MajorVersion="15",
        MinorVersion="1",
        MajorBuildNumber="2507",
        MinorBuildNumber="6",
        Version="Exchange2016",
    )
    ET.SubElement(envelope, f"{{{SOAP}}}Body").append(response)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def _fault(text: str) -> bytes:
    envelope = ET.Element(f"{{{SOAP}}}Envelope")
    fault = ET.SubElement(ET.SubElement(envelope, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
    ET.SubElement(fault, "faultcode").text = "s:Server"
    ET.SubElement(fault, "faultstring").text = text
    detail = ET.SubElement(fault, "detail")
    ET.SubElement(detail, f"{{{E}}}ResponseCode").text = "ErrorInvalidRequest"
    ET.SubElement(detail, f"{{{E}}}Message").text = text
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def _success(operation: str) -> ET.Element:
    message = ET.Element(_m(f"{operation}ResponseMessage"), ResponseClass="Success")
    ET.SubElement(message, _m("ResponseCode")).text = "NoError"
    return message


def _error(operation: str, code: str, text: str) -> ET.Element:
    message = ET.Element(_m(f"{operation}ResponseMessage"), ResponseClass="Error")
    ET.SubElement(message, _m("MessageText")).text = text
    ET.SubElement(message, _m("ResponseCode")).text = code
    ET.SubElement(message, _m("DescriptiveLinkKey")).text = "0"
    return message


def _children(parent: ET.Element | None) -> list[ET.Element]:
    return list(parent) if parent is not None else []


def _page(view: ET.Element | None, found: list[_X]) -> tuple[list[_X], ET.Element]:
    offset = int(view.get("Offset", "0")) if view is not None else 0
    limit = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    page = found[offset : offset + limit]
    end = offset + len(page)
    root = ET.Element(
        _m("RootFolder"),
        IndexedPagingOffset=str(end),
        TotalItemsInView=str(len(found)),
        IncludesLastItemInRange="true" if end >= len(found) else "false",
    )
    return page, root


def _folder_xml(mailbox: _Mailbox, folder: _Folder) -> ET.Element:
    elem = ET.Element(_t("Folder"))
    ET.SubElement(elem, _t("FolderId"), Id=folder.folder_id, ChangeKey="AQAAAA==")
    if folder.parent_id:
        ET.SubElement(elem, _t("ParentFolderId"), Id=folder.parent_id, ChangeKey="AQAAAA==")
    if folder.distinguished != "root":
        ET.SubElement(elem, _t("FolderClass")).text = "IPF.Note"
    ET.SubElement(elem, _t("DisplayName")).text = folder.name
    ET.SubElement(elem, _t("TotalCount")).text = str(len(folder.items))
    ET.SubElement(elem, _t("ChildFolderCount")).text = str(len(mailbox.children(folder)))
    ET.SubElement(elem, _t("UnreadCount")).text = str(sum(not i.is_read for i in folder.items.values()))
    return elem


def _requested_fields(shape: ET.Element | None) -> set[str]:
    if shape is None:
        return set()
    if shape.findtext(_t("BaseShape")) != "IdOnly":
        raise SoapFault("The EWS stand-in only implements the IdOnly base shape.")
    return {uri.get("FieldURI", "") for uri in shape.iter(_t("FieldURI"))}


def _item_xml(item: StoredItem, fields: set[str]) -> ET.Element:
    # Elements in the order of the EWS schema (MessageType).
    elem = ET.Element(_t("Message"))
    if "item:MimeContent" in fields:
        mime = ET.SubElement(elem, _t("MimeContent"), CharacterSet="UTF-8")
        mime.text = base64.b64encode(item.raw).decode()
    ET.SubElement(elem, _t("ItemId"), Id=item.item_id, ChangeKey="CQAAAA==")
    if "item:DateTimeReceived" in fields:
        ET.SubElement(elem, _t("DateTimeReceived")).text = item.received.strftime("%Y-%m-%dT%H:%M:%SZ")
    if "item:Size" in fields:
        ET.SubElement(elem, _t("Size")).text = str(len(item.raw))
    return elem


_COMPARISONS = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


def _matches(expression: ET.Element, item: StoredItem) -> bool:
    """Evaluate the restrictions the plugin uses: comparisons of DateTimeReceived, joined by And."""
    name = expression.tag.rpartition("}")[2]
    if name == "And":
        return all(_matches(e, item) for e in expression)
    compare = _COMPARISONS.get(name)
    uri = expression.find(_t("FieldURI"))
    constant = expression.find(f"{_t('FieldURIOrConstant')}/{_t('Constant')}")
    if compare is None or uri is None or constant is None or uri.get("FieldURI") != "item:DateTimeReceived":
        raise SoapFault(f"The EWS stand-in does not implement the restriction {ET.tostring(expression)!r}.")
    value = datetime.fromisoformat(constant.get("Value", "")).astimezone(UTC)
    return bool(compare(item.received.astimezone(UTC), value))


def _ascending_by_received(sort_order: ET.Element | None) -> bool:
    if sort_order is None:
        return False
    orders = list(sort_order)
    uri = orders[0].find(_t("FieldURI")) if orders else None
    if len(orders) != 1 or uri is None or uri.get("FieldURI") != "item:DateTimeReceived":
        raise SoapFault("The EWS stand-in only sorts by DateTimeReceived.")
    return orders[0].get("Order") == "Ascending"


def _is_draft(elem: ET.Element) -> bool:
    for prop in elem.findall(_t("ExtendedProperty")):
        uri = prop.find(_t("ExtendedFieldURI"))
        if uri is not None and int(uri.get("PropertyTag", "0"), 16) == MESSAGE_FLAGS_TAG:
            return bool(int(prop.findtext(_t("Value"), "0")) & MSGFLAG_UNSENT)
    return True


def _recipients(raw: bytes, elem: ET.Element) -> list[str]:
    """Who Exchange delivers to: the MIME To/Cc/Bcc plus the recipient properties set on the item."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    found = [address for _, address in email.utils.getaddresses(headers) if address]
    for kind in ("ToRecipients", "CcRecipients", "BccRecipients"):
        found += [a.text or "" for a in elem.iterfind(f"{_t(kind)}/{_t('Mailbox')}/{_t('EmailAddress')}")]
    unique: dict[str, str] = {}
    for address in found:
        unique.setdefault(address.lower(), address)
    return list(unique.values())


# --- the HTTP server ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive matters: exchangelib treats "Connection: close" as a busy server.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (flushed per request), or delayed ACKs slow every call.
    wbufsize = 1 << 16
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.lower() != ENDPOINT_PATH.lower():
            self._reply(404, b"Not an EWS endpoint.", "text/plain")
            return
        stand_in = self.server.stand_in
        mailbox = stand_in.authenticate(self.headers.get("Authorization"), body)
        if mailbox is None:
            self._reply(401, b"Unauthorized.", "text/plain", {"WWW-Authenticate": f'Basic realm="{REALM}"'})
            return
        status, answer = stand_in.answer(mailbox, body)
        self._reply(status, answer, "text/xml; charset=utf-8")

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``operations`` instead of an access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stand_in: EwsStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stand_in = stand_in

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients that refuse the self-signed certificate or hang up are expected here."""


def _start(server: _Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="ews-stand-in", daemon=True)
    thread.start()
    return thread


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
    plain, secure = _Server(stand_in), _Server(stand_in)
    context = certificate.server_context()
    secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
    stand_in.endpoint = f"http://127.0.0.1:{plain.server_address[1]}{ENDPOINT_PATH}"
    stand_in.tls_endpoint = f"https://localhost:{secure.server_address[1]}{ENDPOINT_PATH}"
    threads = [_start(plain), _start(secure)]
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
