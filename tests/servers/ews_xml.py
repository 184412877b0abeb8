"""The SOAP shapes the EWS STAND-IN (tests/servers/ews_responder.py) reads and writes, as exchangelib sends them."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import TypeVar

from tests.servers.ews_mailboxes import (
    MESSAGE_FLAGS_TAG,
    MSGFLAG_UNSENT,
    Folder,
    Mailbox,
    SoapFault,
    StoredItem,
)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"

_X = TypeVar("_X")


def _t(tag: str) -> str:
    return f"{{{T}}}{tag}"


def _m(tag: str) -> str:
    return f"{{{M}}}{tag}"


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


def _folder_xml(mailbox: Mailbox, folder: Folder) -> ET.Element:
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
