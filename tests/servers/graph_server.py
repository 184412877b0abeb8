"""A Microsoft Graph STAND-IN over HTTPS: the mail endpoints postroom's ``graph`` protocol calls.

No Graph service can run here. This stand-in implements, from Graph's v1.0 documentation, what the
plugin relies on and what Graph checks:

- bearer tokens, checked by a callable given to it (``verify_token(token) -> claims | None``; the
  ``graph_oauth_server`` instance trusts the OAuth2 stand-in's tokens for Graph's audience):
  401 ``InvalidAuthenticationToken`` when missing, expired, badly signed or for another audience;
  403 ``ErrorAccessDenied`` when an app token lacks the role (``Mail.ReadWrite``, ``Mail.Send``)
  or a user's token names another mailbox;
- ``GET /v1.0/users/{id}/mailFolders/{folder}/messages/delta``: pages of ``Prefer:
  odata.maxpagesize`` messages (10 by default) linked by ``@odata.nextLink``, ending in an
  ``@odata.deltaLink`` from which the next round returns only changes (``@removed`` for mail that
  left); ``$select``; the one ``$filter`` delta allows on messages (``receivedDateTime ge|gt``);
  any other filter is a 400; an unknown token is a 410 ``SyncStateNotFound``;
- ids: the REST id by default, the immutable id with ``Prefer: IdType="ImmutableId"``;
- ``GET .../messages/{id}/$value`` (the MIME), ``DELETE .../messages/{id}`` (to Recoverable
  Items), ``POST .../messages/{id}/move`` (e.g. to ``deleteditems``), ``GET .../mailFolders/{id}``;
- ``POST /v1.0/users/{id}/sendMail`` with a base64 MIME ``text/plain`` body (over 4 MB: 413),
  saving the copy in Sent Items; the large-mail path: a draft from MIME (``POST .../messages``),
  ``attachments/createUploadSession``, ranged ``PUT``s to the upload URL (which must carry no
  bearer token), ``POST .../messages/{id}/send``;
- failures injected on demand (``fail``): any status, Graph error code and ``Retry-After``.

Tests put mail in (``deliver``), read what was sent (``sent``) and count requests (``requests``).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.servers import graph_tokens
from tests.servers.certs import Certificate
from tests.servers.graph_http import GraphHttpServer
from tests.servers.graph_sending import GraphFault, SendingEndpoints, json_answer
from tests.servers.graph_store import WELL_KNOWN, GraphMailbox, SentMail, StoredMessage

if TYPE_CHECKING:  # imported at run time only as its own pytest plugin (assertion rewriting)
    from tests.servers.oauth_server import OAuthServer

Verifier = Callable[[str], dict[str, Any] | None]


@dataclass
class Injected:
    operation: str
    status: int
    code: str
    retry_after: str | None
    times: int


@dataclass
class Request:
    user: str
    operation: str
    method: str
    path: str


class GraphStandIn(SendingEndpoints):
    """The stand-in's state and its answer to each request (the HTTP part is the handler below)."""

    def __init__(self, verify_token: Verifier) -> None:
        self.verify_token = verify_token
        self.base_url = ""
        self.requests: list[Request] = []
        self._mailboxes: dict[str, GraphMailbox] = {}
        self._tokens: dict[str, tuple[str, str, int, str | None]] = {}  # token -> (user, folder, seq, filter)
        self._pages: dict[
            str, tuple[list[dict[str, object]], int, str]
        ] = {}  # skiptoken -> (rest, page, delta)
        self._uploads: dict[str, dict[str, Any]] = {}
        self._injected: list[Injected] = []
        self._refused: dict[str, str] = {}
        self._lock = threading.RLock()

    # --- what tests call -----------------------------------------------------------------------

    def add_user(self, address: str) -> None:
        with self._lock:
            self._mailboxes[address.lower()] = GraphMailbox(address.lower())

    def deliver(self, user: str, raw: bytes, folder: str = "inbox", received: datetime | None = None) -> str:
        """Put a received mail in ``folder``; returns its immutable id."""
        with self._lock:
            return self._mailboxes[user.lower()].put(raw, folder, received).immutable_id

    def messages(self, user: str, folder: str = "inbox") -> list[StoredMessage]:
        with self._lock:
            return list(self._mailboxes[user.lower()].in_folder(folder))

    def sent(self, user: str) -> list[SentMail]:
        with self._lock:
            return list(self._mailboxes[user.lower()].sent)

    def deleted(self, user: str) -> list[str]:
        with self._lock:
            return list(self._mailboxes[user.lower()].deleted)

    def fail(
        self, operation: str, status: int, code: str, retry_after: str | None = None, times: int = 1
    ) -> None:
        """The next ``times`` calls of ``operation`` (delta, value, delete, move, sendMail, draft,
        upload, send, folder) fail with this status, Graph error code and ``Retry-After``."""
        with self._lock:
            self._injected.append(Injected(operation, status, code, retry_after, times))

    def refuse(self, address: str, code: str = "ErrorInvalidRecipients") -> None:
        """Every send to ``address`` is refused with this Graph error code (400)."""
        with self._lock:
            self._refused[address.lower()] = code

    def _record(self, user: str, operation: str) -> None:
        self.requests.append(Request(user, operation, "", ""))

    def count(self, user: str, operation: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.user == user.lower() and r.operation == operation)

    # --- answering -------------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            with self._lock:
                return self._route(method, target, headers, body)
        except GraphFault as fault:
            error = {
                "error": {
                    "code": fault.code,
                    "message": fault.message,
                    "innerError": {"request-id": str(uuid.uuid4())},
                }
            }
            return (
                fault.status,
                json.dumps(error).encode(),
                {"Content-Type": "application/json", **fault.headers},
            )

    def _route(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path.startswith("/upload/"):
            return self._upload(parts.path[8:], method, headers, body)
        match = re.fullmatch(r"/v1\.0/users/([^/]+)(/.*)", parts.path)
        if match is None:
            raise GraphFault(400, "BadRequest", f"Resource not found for the segment {parts.path!r}.")
        user, rest = unquote(match.group(1)).lower(), match.group(2)
        claims = self._authenticate(headers.get("Authorization"))
        mailbox = self._mailboxes.get(user)
        if mailbox is None:
            raise GraphFault(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        operation, handler, args = self._dispatch(method, rest)
        self.requests.append(Request(user, operation, method, rest))
        self._authorise(claims, user, "Mail.Send" if operation in ("sendMail", "send") else "Mail.ReadWrite")
        self._maybe_fail(operation)
        prefer = (headers.get("Prefer") or "").replace(" ", "")
        context = {
            "query": query,
            "immutable": 'IdType="ImmutableId"' in prefer,
            "prefer": prefer,
            "body": body,
            "headers": headers,
        }
        return handler(mailbox, *args, **context)  # type: ignore[no-any-return]

    def _dispatch(self, method: str, rest: str) -> tuple[str, Callable[..., Any], tuple[str, ...]]:
        routes: list[tuple[str, str, str, Callable[..., Any]]] = [
            ("GET", r"/mailFolders/([^/]+)/messages/delta", "delta", self._delta),
            ("GET", r"/mailFolders/([^/]+)", "folder", self._folder),
            ("GET", r"/messages/([^/]+)/\$value", "value", self._value),
            ("DELETE", r"/messages/([^/]+)", "delete", self._delete),
            ("POST", r"/messages/([^/]+)/move", "move", self._move),
            ("POST", r"/sendMail", "sendMail", self._send_mail),
            ("POST", r"/messages", "draft", self._draft),
            (
                "POST",
                r"/messages/([^/]+)/attachments/createUploadSession",
                "createUploadSession",
                self._session,
            ),
            ("POST", r"/messages/([^/]+)/send", "send", self._send_draft),
        ]
        for verb, pattern, operation, handler in routes:
            found = re.fullmatch(pattern, rest)
            if verb == method and found is not None:
                return operation, handler, tuple(unquote(g) for g in found.groups())
        raise GraphFault(400, "BadRequest", f"The stand-in does not implement {method} {rest}.")

    def _authenticate(self, header: str | None) -> dict[str, Any]:
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            raise GraphFault(401, "InvalidAuthenticationToken", "Access token is empty.")
        claims = self.verify_token(header[7:].strip())
        if claims is None:
            raise GraphFault(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure: expired, badly signed or for another audience.",
            )
        return claims

    def _authorise(self, claims: dict[str, Any], user: str, permission: str) -> None:
        if "roles" in claims:
            granted = set(claims["roles"])
        else:
            if str(claims.get("upn", "")).lower() != user:
                raise GraphFault(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            granted = set(str(claims.get("scp", "")).split())
        if permission not in granted:
            raise GraphFault(403, "ErrorAccessDenied", f"Access is denied: the token lacks {permission}.")

    def _maybe_fail(self, operation: str) -> None:
        for injected in self._injected:
            if injected.operation == operation and injected.times > 0:
                injected.times -= 1
                headers = {"Retry-After": injected.retry_after} if injected.retry_after else {}
                raise GraphFault(injected.status, injected.code, f"Injected {injected.code}.", headers)

    # --- reading -----------------------------------------------------------------------------------

    def _folder(self, mailbox: GraphMailbox, folder: str, **_: Any) -> tuple[int, bytes, dict[str, str]]:
        if folder.lower() not in WELL_KNOWN:
            raise GraphFault(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return json_answer(200, {"id": folder.lower(), "displayName": folder})

    def _delta(
        self,
        mailbox: GraphMailbox,
        folder: str,
        *,
        query: dict[str, str],
        immutable: bool,
        prefer: str,
        **_: Any,
    ) -> tuple[int, bytes, dict[str, str]]:
        folder = folder.lower()
        if folder not in WELL_KNOWN:
            raise GraphFault(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        page = int(m.group(1)) if (m := re.search(r"odata\.maxpagesize=(\d+)", prefer)) else 10
        if "$skiptoken" in query:
            if query["$skiptoken"] not in self._pages:
                raise GraphFault(410, "SyncStateNotFound", "The sync state is not found or has expired.")
            rest, page, delta_token = self._pages.pop(query["$skiptoken"])
            return self._page(folder, rest, page, delta_token)
        if "$deltatoken" in query:
            known = self._tokens.get(query["$deltatoken"])
            if known is None or known[0] != mailbox.address or known[1] != folder:
                raise GraphFault(410, "SyncStateNotFound", "The sync state is not found or has expired.")
            _, _, sequence, text = known
            select = None
            present, removed, latest = mailbox.changed_since(folder, sequence)
            present = [m for m in present if _passes(m, text)]
        else:
            text = query.get("$filter")
            _passes(None, text)  # a filter delta does not support is refused before anything else
            present, removed, latest = (
                [m for m in mailbox.in_folder(folder) if _passes(m, text)],
                [],
                mailbox.latest(),
            )
        select = query.get("$select", "").split(",") if query.get("$select") else None
        items: list[dict[str, object]] = [m.graph_json(immutable, select) for m in present]
        items += [{"id": message_id, "@removed": {"reason": "deleted"}} for message_id in removed]
        delta_token = uuid.uuid4().hex
        self._tokens[delta_token] = (mailbox.address, folder, latest, text)
        return self._page(folder, items, page, delta_token)

    def _page(
        self, folder: str, items: list[dict[str, object]], page: int, delta_token: str
    ) -> tuple[int, bytes, dict[str, str]]:
        link = f"{self.base_url}/v1.0/users/{{user}}/mailFolders/{folder}/messages/delta"
        document: dict[str, object] = {"value": items[:page]}
        if len(items) > page:
            skip = uuid.uuid4().hex
            self._pages[skip] = (items[page:], page, delta_token)
            document["@odata.nextLink"] = f"{link}?$skiptoken={skip}"
        else:
            document["@odata.deltaLink"] = f"{link}?$deltatoken={delta_token}"
        return json_answer(200, document, {"Preference-Applied": f"odata.maxpagesize={page}"})

    def _message(self, mailbox: GraphMailbox, message_id: str) -> StoredMessage:
        message = mailbox.find(message_id)
        if message is None:
            raise GraphFault(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return message

    def _value(self, mailbox: GraphMailbox, message_id: str, **_: Any) -> tuple[int, bytes, dict[str, str]]:
        return 200, self._message(mailbox, message_id).raw, {"Content-Type": "text/plain"}

    def _delete(self, mailbox: GraphMailbox, message_id: str, **_: Any) -> tuple[int, bytes, dict[str, str]]:
        message = self._message(mailbox, message_id)
        mailbox.remove(message)
        mailbox.deleted.append(message.immutable_id)
        return 204, b"", {}

    def _move(
        self, mailbox: GraphMailbox, message_id: str, *, body: bytes, immutable: bool, **_: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        message = self._message(mailbox, message_id)
        destination = str(json.loads(body or b"{}").get("destinationId", "")).lower()
        if destination not in WELL_KNOWN:
            raise GraphFault(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        mailbox.move(message, destination)
        return json_answer(201, message.graph_json(immutable, None))


def _passes(message: StoredMessage | None, text: str | None) -> bool:
    """Whether ``message`` passes delta's one supported filter; an unsupported filter is a 400."""
    if not text:
        return True
    found = re.fullmatch(r"\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*", text)
    if found is None:
        raise GraphFault(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The only supported $filter on message delta is receivedDateTime ge|gt.",
        )
    bound = datetime.fromisoformat(found.group(2).replace("Z", "+00:00"))
    if message is None:
        return True
    return message.received >= bound if found.group(1) == "ge" else message.received > bound


#: What Graph accepts as a token's audience: its resource URI, or its application id (v1 tokens).
GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})


def for_graph(verify: Verifier) -> Verifier:
    """An issuer's check (signature, expiry) plus Graph's own: the token's audience is Microsoft Graph.

    Entra ID signs tokens for every resource with the same keys; Graph refuses one minted for
    another resource (e.g. Exchange Online's ``https://outlook.office365.com``) with a 401.
    """

    def verify_for_graph(token: str) -> dict[str, Any] | None:
        claims = verify(token)
        return claims if claims is not None and claims.get("aud") in GRAPH_AUDIENCES else None

    return verify_for_graph


@contextmanager
def serving(certificate: Certificate, verify_token: Verifier, name: str) -> Iterator[GraphStandIn]:
    """A Graph stand-in on https://localhost:PORT (``base_url``) checking tokens with ``verify_token``."""
    stand_in = GraphStandIn(verify_token)
    server = GraphHttpServer(stand_in)
    server.socket = certificate.server_context().wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    stand_in.base_url = f"https://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def graph_server(certificate: Certificate) -> Iterator[GraphStandIn]:
    """The Graph stand-in on https://localhost:PORT (``base_url``, a profile's host), once per session.

    Its tokens are checked by ``graph_tokens.verify_token`` with a signing key made for the session.
    """
    directory = Path(tempfile.mkdtemp(prefix="graph-key"))
    graph_tokens.write_key(directory / "signing-key.pem")
    with serving(certificate, graph_tokens.verify_token, "graph-stand-in") as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def graph_oauth_server(certificate: Certificate, oauth_server: OAuthServer) -> Iterator[GraphStandIn]:
    """A Graph stand-in that trusts the OAuth2 stand-in's tokens (as Graph trusts Entra ID's), once per session.

    Tokens are checked with the OAuth2 stand-in's key and must be for Graph's audience; an app-only
    token must carry the role each call needs (``Mail.ReadWrite``, ``Mail.Send``).
    """
    with serving(certificate, for_graph(oauth_server.verify), "graph-oauth-stand-in") as stand_in:
        yield stand_in
