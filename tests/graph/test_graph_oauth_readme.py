"""Issue 17, must show 1: the README's Microsoft 365 `graph` commands, followed literally, end to end.

The commands are read from README.md itself (the ``sh`` block of "Through Microsoft Graph" and the
fetch, reply and send lines of "Running it for real") and run as real ``postroom`` processes. Only
what an operator would fill in is changed: the placeholders (tenant, client id, secret, mailbox,
attachment) and, since Microsoft cannot be reached from here, the endpoints — ``--authority`` and
``--ca-file`` for the OAuth2 stand-in, ``--incoming-host``/``--outgoing-host`` for the Graph
stand-in, whose certificate is trusted through ``REQUESTS_CA_BUNDLE`` (tests/graph/conftest.py).
The Graph stand-in here trusts the OAuth2 stand-in's tokens only (``graph_oauth_server``): MSAL's
client-credentials token must be for Graph's audience and carry Mail.ReadWrite and Mail.Send.
"""

from __future__ import annotations

import email
import email.policy
import re
import shlex
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from postroom.core.app import Postroom
from postroom.core.data.models import Direction, Message, MessageRaw, OAuthGrant
from postroom.core.data.models.base import utcnow
from postroom.core.data.secrets import decrypt_password
from postroom.core.inbound.fetch import Fetcher
from tests.outbox.helpers import outbox_rows
from tests.servers.graph_server import GraphStandIn
from tests.servers.oauth_server import OAuthServer
from tests.support.cli import Cli, CliResult
from tests.support.mail import numbered_mail

README = Path(__file__).resolve().parents[2] / "README.md"
#: A command of the README: its words after ``postroom``, and what it reads on standard input.
Command = tuple[list[str], str | None]


def readme_commands(heading: str) -> list[Command]:
    """The ``postroom`` commands of the first ``sh`` block under ``heading``, as a shell would split them."""
    text = README.read_text()
    section = text[text.index(heading) :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"no sh block under {heading!r}"
    commands: list[Command] = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            command, words = words[:cut], words[cut + 1 :]
            stdin = None
            if "<<<" in command:  # a here-string: one line on standard input
                at = command.index("<<<")
                stdin, command = command[at + 1] + "\n", command[:at]
            assert command[0] == "postroom", command
            commands.append((command[1:], stdin))
    return commands


def filled_in(command: Command, values: dict[str, str]) -> Command:
    """The command with the operator's placeholders (``TENANT_ID``, ``$CLIENT_SECRET``...) replaced."""
    words, stdin = command

    def fill(word: str) -> str:
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        return word

    return [fill(w) for w in words], None if stdin is None else fill(stdin)


def test_the_readme_graph_profile_signs_in_with_client_credentials_fetches_100_and_replies_intact(
    postroom_cli: Cli,
    database_url: str,
    oauth_server: OAuthServer,
    graph_oauth_server: GraphStandIn,
    tmp_path: Path,
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(tenant=f"tenant-{uuid.uuid4().hex[:6]}")
    assert client.secret is not None
    mailbox = f"support-{uuid.uuid4().hex[:8]}@contoso.test"
    graph_oauth_server.add_user(mailbox)
    for number in range(100):
        graph_oauth_server.deliver(mailbox, numbered_mail(number))
    label = tmp_path / "label.pdf"
    label.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n")
    values = {
        "TENANT_ID": client.tenant,
        "CLIENT_ID": client.client_id,
        "$CLIENT_SECRET": client.secret,
        "support@example.com": mailbox,
        "label.pdf": str(label),
    }
    # Where the stand-ins are: the only options the README's commands do not give.
    endpoints: dict[tuple[str, ...], list[str]] = {
        ("profile", "add"): ["--incoming-host", graph_oauth_server.base_url, "--outgoing-host", graph_oauth_server.base_url],
        ("oauth", "connect"): ["--authority", oauth_server.url, "--ca-file", str(oauth_server.ca_file)],
    }
    directory = [c for c in readme_commands("## A first profile") if c[0][0] in ("campaign", "queue")]
    setup = directory + readme_commands("### Through Microsoft Graph")
    desk = [
        c for c in readme_commands("## Running it for real")
        if c[0][0] in ("fetch", "send") or c[0][:2] in (["agent", "add"], ["ticket", "reply"])
    ]
    assert [c[0][:2] for c in setup] == [
        ["campaign", "add"], ["queue", "add"], ["profile", "add"], ["rule", "add"],
        ["oauth", "connect"], ["profile", "test"], ["oauth", "status"],
    ]
    assert [c[0][:2] for c in desk] == [["fetch"], ["agent", "add"], ["ticket", "reply"], ["send"]]
    profile = setup[2][0][2]
    assert "--delete-on-fetch" in setup[2][0] and setup[4][0][3:7] == ["--provider", "microsoft", "--flow", "client-credentials"]

    outputs: list[CliResult] = []
    for command in setup + desk:
        words, stdin = filled_in(command, values)
        words += endpoints.get(tuple(words[:2]), [])
        result = postroom_cli.run_process(*words, input=stdin)
        outputs.append(result)
        assert result.exit_code == 0, f"postroom {' '.join(words)}: {result.stderr or result.stdout}"

    connect, tested, status = outputs[4], outputs[5], outputs[6]
    assert f"Profile {profile!r} is signed in with microsoft (client-credentials) as {mailbox}" in connect.stdout
    assert [line.split()[:2] for line in tested.stdout.splitlines()] == [["ok", "incoming:"], ["ok", "outgoing:"]]
    assert "provider: microsoft" in status.stdout and "flow: client-credentials" in status.stdout
    assert "scopes: https://graph.microsoft.com/.default" in status.stdout

    # Fetched: all 100 on tickets, and the Graph folder empty (deleted after the commit).
    assert graph_oauth_server.messages(mailbox) == [] and len(graph_oauth_server.deleted(mailbox)) == 100
    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            inbound = select(func.count()).select_from(Message).where(Message.direction == Direction.INBOUND)
            assert session.scalar(inbound) == 100
            assert session.scalar(inbound.where(Message.ticket_id.is_(None))) == 0
            grant = session.scalars(select(OAuthGrant)).one()
            stored_token = decrypt_password(grant.access_token_encrypted)
        [row] = outbox_rows(app)
        with app.transaction() as session:
            composed = session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == row.message_pk))
    finally:
        app.dispose()

    # Sent: the MIME postroom stored for the reply is what arrived at Graph, byte for byte.
    [sent] = graph_oauth_server.sent(mailbox)
    assert composed is not None and sent.raw == composed
    reply = email.message_from_bytes(sent.raw, policy=email.policy.default)
    [attachment] = list(reply.iter_attachments())
    assert attachment.get_filename() == "label.pdf" and attachment.get_content() == label.read_bytes()
    assert "Your parcel left today." in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # One client-credentials token, for Graph with the app's roles, served the whole fetch and the send.
    claims = oauth_server.verify(stored_token or "")
    assert claims is not None and claims["aud"] == "https://graph.microsoft.com"
    assert {"Mail.ReadWrite", "Mail.Send"} <= set(claims["roles"])
    assert issuer.count(client.client_id) == 1
    assert graph_oauth_server.count(mailbox, "sendMail") == 1

    # No secret in anything postroom printed.
    tokens = [i.token for i in issuer.issued if i.client_id == client.client_id]
    printed = "".join(r.stdout + r.stderr for r in outputs)
    for secret in (client.secret, *tokens):
        assert secret not in printed


def test_the_graph_stand_in_refuses_a_token_for_another_resource_or_without_the_role(
    oauth_server: OAuthServer, graph_oauth_server: GraphStandIn
) -> None:
    """What makes the test above meaningful: Graph takes only Graph tokens carrying the role a call needs."""
    issuer = oauth_server.issuer
    client = issuer.register_client()
    mailbox = f"desk-{uuid.uuid4().hex[:8]}@contoso.test"
    graph_oauth_server.add_user(mailbox)
    form = {"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret or ""}
    exchange = issuer.token(client.tenant, {**form, "scope": "https://outlook.office365.com/.default"})
    graph = issuer.token(client.tenant, {**form, "scope": "https://graph.microsoft.com/.default"})
    reader = issuer.register_client()
    reader.roles = ("Mail.ReadWrite",)
    read_only = issuer.token(reader.tenant, {**form, "client_id": reader.client_id, "client_secret": reader.secret or "",
                                            "scope": "https://graph.microsoft.com/.default"})

    def call(token: str, method: str, path: str) -> int:
        status, _, _ = graph_oauth_server.answer(
            method, f"/v1.0/users/{mailbox}{path}", {"Authorization": f"Bearer {token}"}, b"{}"
        )
        return status

    assert call(exchange["access_token"], "GET", "/mailFolders/inbox") == 401  # wrong audience
    assert call(graph["access_token"] + "x", "GET", "/mailFolders/inbox") == 401  # bad signature
    assert call(graph["access_token"], "GET", "/mailFolders/inbox") == 200
    assert call(read_only["access_token"], "GET", "/mailFolders/inbox") == 200
    assert call(read_only["access_token"], "POST", "/sendMail") == 403  # no Mail.Send


def test_a_token_that_runs_out_during_a_graph_fetch_cycle_is_renewed_and_the_cycle_completes(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, graph_oauth_server: GraphStandIn
) -> None:
    """A cycle opens its connection with one token; a long one (a first fetch of thousands of mails)
    can outlast it. Here the token runs out after the first batch, for Graph and for the provider."""
    issuer = oauth_server.issuer
    client = issuer.register_client()
    mailbox = f"desk-{uuid.uuid4().hex[:8]}@contoso.test"
    graph_oauth_server.add_user(mailbox)
    for number in range(30):
        graph_oauth_server.deliver(mailbox, numbered_mail(number))
    postroom_cli.ok(
        "profile", "add", "support", "--username", mailbox, "--incoming", "--fetch-protocol", "graph",
        "--delete-on-fetch", "--incoming-host", graph_oauth_server.base_url,
    )
    postroom_cli.ok(
        "oauth", "connect", "support", "--provider", "microsoft", "--flow", "client-credentials",
        "--tenant", client.tenant, "--client-id", client.client_id, "--client-secret-stdin",
        "--authority", oauth_server.url, "--ca-file", str(oauth_server.ca_file), input=f"{client.secret}\n",
    )
    [first] = [i.token for i in issuer.issued if i.client_id == client.client_id]
    app = Postroom(database_url)
    trusted = graph_oauth_server.verify_token

    def expire_first_token(done: int, total: int) -> None:
        graph_oauth_server.verify_token = lambda token: None if token == first else trusted(token)
        with app.transaction() as session:
            session.execute(update(OAuthGrant).values(access_token_expires_at=utcnow() - timedelta(seconds=1)))

    try:
        with app.transaction() as session:
            profile_id = session.scalars(select(OAuthGrant.media_profile_id)).one()
        report = Fetcher(app, batch_mails=10).fetch_profile(profile_id, expire_first_token)
    finally:
        graph_oauth_server.verify_token = trusted
        app.dispose()

    assert (report.error, report.stored, report.deleted) == (None, 30, 30)
    assert graph_oauth_server.messages(mailbox) == []
    assert issuer.count(client.client_id, "client_credentials") == 2  # one new token, asked for once
