"""The ``graph`` protocol's sender: the composer's MIME through ``sendMail``, large mail by draft + upload.

Graph takes a MIME message as the base64 text of a ``text/plain`` request body; a request may not
exceed 4 MB, so a mail whose base64 would not fit is sent the way Graph documents for large
attachments: a draft made from the MIME without its attachments, each attachment added through an
upload session (``createUploadSession``, then ranges of at most 4 MB), then ``send``. Either way
Exchange keeps the sent copy in Sent Items itself (``KEEPS_SENT_COPY``). A mail killed between the
draft and ``send`` leaves a draft behind; the outbox sends the mail again after its lease.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
from collections.abc import Sequence
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

from postroom.core.contract.protocols import SendFailure
from postroom.plugins.protocols.base import ConnectionSettings, ProtocolError, Sender, SendReport
from postroom.plugins.protocols.graph_client import THROTTLED, GraphClient, GraphError

#: A request body Graph accepts at most (4 MB), and what is kept free of it for the request itself.
REQUEST_LIMIT = 4 * 1024 * 1024
MIME_LIMIT = REQUEST_LIMIT - 64 * 1024
#: Upload-session ranges: under 4 MB each, a multiple of 320 KiB as Graph's upload sessions advise.
CHUNK = 10 * 320 * 1024

#: Graph error codes of a refused send, with the RFC 3463 status that means the same, put in front
#: of the text so that every classifier sorts them like an SMTP reply. Graph's codes are Exchange's.
ENHANCED_STATUS = {
    "ErrorInvalidRecipients": "5.1.1",
    "ErrorMailRecipientNotFound": "5.1.1",
    "ErrorInvalidSmtpAddress": "5.1.3",
    "ErrorQuotaExceeded": "4.2.2",
    "ErrorMailboxStoreUnavailable": "4.3.2",
    "ErrorMessageSizeExceeded": "5.3.4",
    "ErrorMimeContentConversionFailed": "5.6.0",
    "ErrorMimeContentInvalidBase64String": "5.6.0",
    "ErrorInvalidMimeContent": "5.6.0",
    "ErrorSendAsDenied": "5.7.1",
    "ErrorMessageSubmissionBlocked": "5.7.1",
    "ErrorAccessDenied": "5.7.1",
    "ErrorServerBusy": "4.4.5",
    "ErrorSubmissionQuotaExceeded": "4.4.5",
}


class GraphSendFailure(SendFailure):
    """A send Graph refused, with Graph's error code (for the ``graph`` plugin's own classifier)."""

    def __init__(self, text: str, code: str, **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.graph_code = code


def refusal(error: GraphError, where: str) -> SendFailure:
    """The :class:`SendFailure` of a refused call: throttling with its wait, else Graph's code."""
    if error.kind == "auth":
        return GraphSendFailure(
            f"{where} refused the access token ({error.status} {error}); check that the token provider "
            f"gives a current token for Graph with the Mail.Send permission.",
            error.code,
            kind="auth",
            reply_code=error.status,
        )
    if error.status in THROTTLED:
        wait = f", asking to wait {error.retry_after:.0f} s" if error.retry_after is not None else ""
        return GraphSendFailure(
            f"4.4.5 {where} throttled the send ({error.status} {error.code}){wait}.",
            error.code,
            reply_code=error.status,
            retry_after=error.retry_after,
        )
    status = ENHANCED_STATUS.get(error.code) or ("4.3.0" if error.status >= 500 else None)
    text = f"{error.status} {error}"
    return GraphSendFailure(f"{status} {text}" if status else text, error.code, reply_code=error.status)


class GraphSender(Sender):
    """Sends as the profile's mailbox (``username``); the From header must be it or one it may send as."""

    def __init__(self, settings: ConnectionSettings) -> None:
        try:
            self._client = GraphClient(settings)
        except ProtocolError as error:
            raise SendFailure(str(error), kind=error.kind) from error

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        """Hand the mail to Graph, which takes or refuses it as a whole (never per recipient)."""
        hidden = _envelope_only(raw, recipients)
        if hidden:
            # Graph delivers to the MIME's recipient headers; a recipient only in the envelope goes
            # in a Bcc header, which Exchange removes before delivery.
            raw = f"Bcc: {', '.join(hidden)}\r\n".encode() + raw
        try:
            if len(raw) * 4 // 3 + 4 <= MIME_LIMIT:
                self._client.request(
                    "POST",
                    "/sendMail",
                    data=base64.b64encode(raw),
                    headers={"Content-Type": "text/plain"},
                    wait_when_throttled=False,
                )
            else:
                self._send_large(raw)
        except GraphError as error:
            raise refusal(error, self._client.where()) from error
        except ProtocolError as error:
            raise SendFailure(str(error), kind=error.kind) from error
        return SendReport()

    def _send_large(self, raw: bytes) -> None:
        skeleton, attachments = split_attachments(raw)
        if len(skeleton) * 4 // 3 + 4 > MIME_LIMIT:
            raise GraphError(
                413, "ErrorMessageSizeExceeded", "the mail without its attachments is over 4 MB", "protocol"
            )
        draft = self._client.json(
            "POST",
            "/messages",
            data=base64.b64encode(skeleton),
            headers={"Content-Type": "text/plain"},
            wait_when_throttled=False,
        )
        message = f"/messages/{draft['id']}"
        for name, content_type, payload in attachments:
            session = self._client.json(
                "POST",
                f"{message}/attachments/createUploadSession",
                json={
                    "AttachmentItem": {
                        "attachmentType": "file",
                        "name": name,
                        "size": len(payload),
                        "contentType": content_type,
                    }
                },
                wait_when_throttled=False,
            )
            self._upload(str(session["uploadUrl"]), payload)
        self._client.request("POST", f"{message}/send", wait_when_throttled=False)

    def _upload(self, url: str, payload: bytes) -> None:
        """PUT the ranges; the upload URL carries its own authorisation, so no bearer token goes with it."""
        for start in range(0, max(len(payload), 1), CHUNK):
            chunk = payload[start : start + CHUNK]
            end = start + len(chunk) - 1
            self._client.request(
                "PUT",
                url,
                data=chunk,
                headers={
                    "Authorization": None,
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"bytes {start}-{end}/{len(payload)}",
                },
                wait_when_throttled=False,
            )

    def close(self) -> None:
        self._client.close()


def split_attachments(raw: bytes) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    """The mail without its attachment parts, and each attachment as (file name, type, content)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    attachments: list[tuple[str, str, bytes]] = []

    def strip(part: Message) -> None:
        payload = part.get_payload()
        if not part.is_multipart() or not isinstance(payload, list):
            return
        kept: list[Message | str] = []
        for child in payload:
            if not isinstance(child, Message):
                continue
            if not child.is_multipart() and child.get_content_disposition() == "attachment":
                content = child.get_payload(decode=True)
                name = child.get_filename() or f"attachment-{len(attachments) + 1}"
                attachments.append(
                    (name, child.get_content_type(), content if isinstance(content, bytes) else b"")
                )
            else:
                strip(child)
                kept.append(child)
        part.set_payload(kept)

    strip(message)
    return message.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n")), attachments


def _envelope_only(raw: bytes, recipients: Sequence[str]) -> list[str]:
    """The envelope recipients that are not in the mail's To or Cc header."""
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    visible = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    shown = {address.lower() for _, address in email.utils.getaddresses(visible)}
    return [r for r in recipients if r.lower() not in shown]
