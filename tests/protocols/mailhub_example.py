"""Mailhub: a vendor's protocol plugin for postroom, the example that docs/protocols.md shows verbatim.

Mailhub (a made-up hosted mail service) keeps each account's mail in folders behind a small
JSON API: HTTPS on port 443, or plain HTTP on port 8080 for appliances on a local network.
It files every mail it sends in the account's Sent folder itself.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, ClassVar
from urllib.parse import quote

from postroom import (
    ConnectionSettings,
    FailureKind,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolError,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
    hookimpl,
)


class MailhubRefusal(ProtocolError):
    """The service answered, and said no: its own reply code and text."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message, "protocol")
        self.code = code


class MailhubApi:
    """One account's requests to the service; every failure becomes one sentence naming the server."""

    def __init__(self, settings: ConnectionSettings, scheme: str) -> None:
        self.settings = settings
        self.where = f"Mailhub server {settings.host}:{settings.port}"
        if scheme == "http" and not settings.allow_plaintext_login:
            # Plain HTTP would carry the password (or token) in clear: only with the operator's consent.
            raise ProtocolError(
                f"The {self.where} speaks plain HTTP, so profile {settings.profile_name!r} did not send its "
                f"login unencrypted; use mailhub, or allow plain-text login with "
                f"'postroom profile modify {settings.profile_name} --allow-plaintext-login'.",
                "tls",
            )
        self.base = f"{scheme}://{settings.host}:{settings.port}/api/v1"
        context = ssl.create_default_context()
        if not settings.tls_verify:  # the operator's --no-tls-verify
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        if settings.access_token:  # from a postroom_get_access_token hook (OAuth 2.0)
            self.auth = f"Bearer {settings.access_token}"
        else:
            login = f"{settings.username}:{settings.password}".encode()
            self.auth = f"Basic {base64.b64encode(login).decode()}"

    def call(self, method: str, path: str, document: dict[str, Any] | None = None) -> bytes | None:
        """The body of the answer; None when what was asked for does not exist (404)."""
        body = json.dumps(document).encode() if document is not None else None
        headers = {"Authorization": self.auth, "Content-Type": "application/json"}
        request = urllib.request.Request(self.base + path, body, headers, method=method)
        try:
            with self.opener.open(request, timeout=self.settings.timeout) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            if error.code in (401, 403):
                raise ProtocolError(
                    f"The {self.where} refused the login {self.settings.username!r}.", "auth"
                ) from error
            try:  # Mailhub says why in JSON; a proxy in between may not
                said = json.loads(error.read())
            except ValueError:
                said = {}
            code, text = said.get("code", error.code), said.get("text", error.reason)
            raise MailhubRefusal(f"{code} {text}", code) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            kind: FailureKind = "connection"
            if isinstance(reason, ssl.SSLError):
                kind = "tls"
            elif isinstance(reason, socket.gaierror):
                kind = "unknown-host"
            raise ProtocolError(f"The {self.where} could not be reached: {reason}.", kind) from error


class MailhubMailbox(Mailbox):
    """One folder of the account; message ids are the ledger keys (Mailhub never reuses them)."""

    def __init__(self, api: MailhubApi, folder: str) -> None:
        self.api, self.folder = api, folder
        self.check()  # opening a mailbox logs in and finds the folder

    def check(self) -> None:
        if self.api.call("GET", f"/folders/{quote(self.folder, safe='')}") is None:
            raise ProtocolError(f"The {self.api.where} has no folder {self.folder!r}.", "folder")

    def list_mail(self, since: date | None) -> list[MailRef]:
        query = f"?since={since.isoformat()}" if since else ""
        listing = self.api.call("GET", f"/folders/{quote(self.folder, safe='')}/mail{query}")
        # Mailhub lists oldest first, as postroom wants them.
        return [MailRef(item["id"], item["size"]) for item in json.loads(listing or b"[]")]

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        for key in keys:
            raw = self.api.call("GET", f"/mail/{quote(key, safe='')}/raw")
            if raw is not None:  # gone meanwhile: skipped
                yield FetchedMail(key, raw)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.api.call("DELETE", f"/mail/{quote(key, safe='')}")

    def close(self) -> None:
        """Nothing to close: every request stood on its own."""


class MailhubSender(Sender):
    """Hands each mail to the service, which delivers it and files it in Sent."""

    def __init__(self, api: MailhubApi) -> None:
        self.api = api

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        mail = {"from": envelope_from, "to": list(recipients), "raw": base64.b64encode(raw).decode()}
        try:
            answer = json.loads(self.api.call("POST", "/send", mail) or b"{}")
        except MailhubRefusal as refusal:  # the whole mail was refused: nobody got it
            raise SendFailure(str(refusal), reply_code=refusal.code) from refusal
        except ProtocolError as error:
            raise SendFailure(str(error), kind=error.kind) from error
        # Recipients refused one by one go into the report, even when that is all of them.
        refused = {
            address: SendFailure(f"{said['code']} {said['text']}", reply_code=said["code"], recipient=address)
            for address, said in answer.get("refused", {}).items()
        }
        return SendReport(refused=refused)

    def close(self) -> None:
        """Nothing to close: every request stood on its own."""


class MailhubProtocol(ProtocolPlugin):
    """Mailhub over HTTPS. Everything postroom needs to know about it is in these attributes."""

    NAME = "mailhub"
    LABEL = "Mailhub API (HTTPS)"
    CAN_FETCH = True
    CAN_SEND = True
    DEFAULT_PORT = 443
    DEFAULT_FOLDER: ClassVar[str] = "Inbox"
    KEEPS_SENT_COPY = True
    SCHEME: ClassVar[str] = "https"

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        return MailhubMailbox(MailhubApi(settings, self.SCHEME), settings.folder or self.DEFAULT_FOLDER)

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        try:
            api = MailhubApi(settings, self.SCHEME)
            api.call("GET", "/account")  # log in now, so a wrong password fails before any mail
        except ProtocolError as error:
            raise SendFailure(str(error), kind=error.kind) from error
        return MailhubSender(api)


class MailhubHttpProtocol(MailhubProtocol):
    """Mailhub appliances on a local network, which speak plain HTTP on their own port."""

    NAME = "mailhub-http"
    LABEL = "Mailhub API (plain HTTP, local appliances)"
    DEFAULT_PORT = 8080
    SCHEME = "http"


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [MailhubProtocol, MailhubHttpProtocol]
