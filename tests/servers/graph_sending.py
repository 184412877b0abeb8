"""The sending endpoints of the Microsoft Graph STAND-IN (see tests/servers/graph_server.py).

``sendMail`` with base64 MIME, and the large-mail path Graph documents: a draft from MIME, upload
sessions for the attachments (ranged PUTs to a URL that carries its own authorisation), ``send``.
Both keep the sent copy in Sent Items, as Exchange does.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import json
import re
import uuid
from typing import Any

from tests.servers.graph_store import GraphMailbox, SentMail, StoredMessage

REQUEST_LIMIT = 4 * 1024 * 1024
Answer = tuple[int, bytes, dict[str, str]]


class GraphFault(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def json_answer(
    status: int, document: object, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})}


class SendingEndpoints:
    """The sending half of the stand-in; :class:`GraphStandIn` supplies the state and the lookups."""

    base_url: str
    requests: list[Any]
    _uploads: dict[str, dict[str, Any]]
    _refused: dict[str, str]

    def _message(self, mailbox: GraphMailbox, message_id: str) -> StoredMessage:
        raise NotImplementedError

    def _maybe_fail(self, operation: str) -> None:
        raise NotImplementedError

    def _record(self, user: str, operation: str) -> None:
        raise NotImplementedError

    def _mime(self, body: bytes, headers: Any) -> bytes:
        if not (headers.get("Content-Type") or "").startswith("text/plain"):
            raise GraphFault(
                400, "ErrorInvalidRequest", "The stand-in takes messages only as base64 MIME (text/plain)."
            )
        if len(body) > REQUEST_LIMIT:
            raise GraphFault(413, "RequestBodyTooLarge", "The request body exceeds the maximum of 4 MB.")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise GraphFault(
                400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
            ) from None

    def _deliver(
        self, mailbox: GraphMailbox, raw: bytes, via: str, attachments: list[tuple[str, str, bytes]]
    ) -> None:
        headers = email.message_from_bytes(raw, policy=email.policy.compat32)
        values = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
        recipients = [address for _, address in email.utils.getaddresses(values) if address]
        if not recipients:
            raise GraphFault(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        for address in recipients:
            if address.lower() in self._refused:
                raise GraphFault(400, self._refused[address.lower()], f"The recipient {address} isn't valid.")
        mailbox.sent.append(SentMail(raw, recipients, via, attachments))
        copy = mailbox.put(raw, "sentitems")
        copy.attachments = attachments

    def _send_mail(
        self, mailbox: GraphMailbox, *, body: bytes, headers: Any, **_: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        self._deliver(mailbox, self._mime(body, headers), "sendMail", [])
        return 202, b"", {}

    def _draft(
        self, mailbox: GraphMailbox, *, body: bytes, headers: Any, immutable: bool, **_: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        draft = mailbox.put(self._mime(body, headers), "drafts", is_draft=True)
        return json_answer(201, draft.graph_json(immutable, None))

    def _session(
        self, mailbox: GraphMailbox, message_id: str, *, body: bytes, **_: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        draft = self._message(mailbox, message_id)
        item = json.loads(body or b"{}").get("AttachmentItem") or {}
        if item.get("attachmentType") != "file" or not isinstance(item.get("size"), int):
            raise GraphFault(
                400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType file and a size."
            )
        token = uuid.uuid4().hex
        self._uploads[token] = {"draft": draft, "user": mailbox.address, "item": item, "data": bytearray()}
        url = f"{self.base_url}/upload/{token}"
        return json_answer(
            201,
            {"uploadUrl": url, "expirationDateTime": "2099-01-01T00:00:00Z", "nextExpectedRanges": ["0-"]},
        )

    def _upload(
        self, token: str, method: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        session = self._uploads.get(token)
        if method != "PUT" or session is None:
            raise GraphFault(404, "ErrorItemNotFound", "The upload session is not found.")
        if headers.get("Authorization"):
            raise GraphFault(
                401, "InvalidAuthenticationToken", "An upload URL takes no Authorization header."
            )
        self._record(session["user"], "upload")
        self._maybe_fail("upload")
        found = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("Content-Range") or "")
        data: bytearray = session["data"]
        size = session["item"]["size"]
        if (
            found is None
            or int(found.group(1)) != len(data)
            or int(found.group(3)) != size
            or len(body) > REQUEST_LIMIT
        ):
            raise GraphFault(
                400, "InvalidContentRange", "The Content-Range does not match the next expected range."
            )
        data += body
        if len(data) < size:
            return json_answer(200, {"nextExpectedRanges": [f"{len(data)}-"]})
        item = session["item"]
        session["draft"].attachments.append(
            (item["name"], item.get("contentType", "application/octet-stream"), bytes(data))
        )
        del self._uploads[token]
        return 201, b"", {"Location": f"{self.base_url}/attachments/{uuid.uuid4().hex}"}

    def _send_draft(
        self, mailbox: GraphMailbox, message_id: str, **_: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        draft = self._message(mailbox, message_id)
        if not draft.is_draft:
            raise GraphFault(400, "ErrorInvalidOperation", "Only a draft can be sent.")
        self._deliver(mailbox, draft.raw, "draft+send", list(draft.attachments))
        mailbox.remove(draft)
        return 202, b"", {}
