"""Token refresh across workers: one refresh per expiry, however many workers share the token.

    python -m bench.oauth_refresh [--lifetime 60] [--minutes 10] [--workers 2] [--pg-url URL]

Issue 17's full version of what tests/oauth/test_refresh.py shows in seconds. Starts the test
suite's OAuth2 stand-in (tests/servers/oauth_server.py, tokens living ``--lifetime`` seconds), a
real Dovecot whose oauth2 passdb introspects the tokens there, and the XOAUTH2 SMTP server; makes
one routed IMAP + SMTP profile on a throw-away PostgreSQL database, signs it in with ``postroom
oauth connect --provider microsoft --flow device-code`` (the user code approved at the stand-in),
and runs ``--workers`` real ``postroom run`` processes for ``--minutes``. Meanwhile a customer's
mail arrives every few seconds and every new ticket gets a reply, so the workers fetch and send
throughout. Then it prints what the stand-in counted: refreshes against the number of expiries,
whether any refresh token was redeemed twice (a race), how much life the replaced tokens had
left, and the mails fetched and sent. Exit status 1 when a refresh raced or a worker failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue
from postroom.core.data.models import Direction, MediaProfile, Message, OAuthGrant, SMessageSendInfo
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.data.rules import add_rule
from postroom.core.outbound.compose import queue_reply
from postroom.plugins.oauth.store import MARGIN_SHARE
from tests.oauth.conftest import SignIn
from tests.servers.certs import make_certificate
from tests.servers.oauth_mail import OAuthDovecot, start_oauth_smtp
from tests.servers.oauth_server import OAuthServer
from tests.support.cli import PostroomProcess
from tests.support.mail import make_mail


def make_profile(app: Postroom, user: str, dovecot: OAuthDovecot, smtp_port: int) -> None:
    with app.transaction() as session:
        campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Support")
        queue = add_queue(session, campaign, "First line")
        profile = create_profile(
            session, app.plugins, DEFAULT_CONTACT_CENTER_ID, "bench",
            ProfileFields(
                username=user, fetch_protocol="imap", incoming_host=dovecot.host, incoming_port=dovecot.imap_port,
                send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=smtp_port, send_from_address=user,
                incoming_allowed=True, outgoing_allowed=True, fetch_interval=5, delete_on_fetch=True, tls_verify=False,
            ),
        )
        add_rule(session, profile, campaign, queue)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lifetime", type=int, default=60, help="seconds an access token lives (default 60)")
    parser.add_argument("--minutes", type=float, default=10, help="how long the workers run (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="postroom run processes (default 2)")
    parser.add_argument("--pg-url", default=os.environ.get("POSTROOM_BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own deprecation notes

    base = Path(tempfile.mkdtemp(prefix="ob", dir="/tmp"))
    base.chmod(0o755)
    os.environ.update(POSTROOM_HOME=str(base), POSTROOM_SECRET_KEY=Fernet.generate_key().decode(), NO_PROXY="127.0.0.1")
    certificate = make_certificate(base)
    oauth = OAuthServer(certificate)
    oauth.start()
    oauth.issuer.token_lifetime = args.lifetime
    (base / "dv").mkdir(mode=0o755)
    dovecot = OAuthDovecot(base / "dv", certificate, oauth)
    dovecot.start()
    smtp, controller = start_oauth_smtp(certificate, oauth)
    workers: list[PostroomProcess] = []
    try:
        with scratch_postgresql(args.pg_url, prefix="postroom_oauth") as url:
            app = Postroom(url)
            app.init()
            user, _ = dovecot.new_user("bench")
            client = oauth.issuer.register_client(public=True)
            make_profile(app, user, dovecot, smtp.port)
            sign_in = SignIn(
                url, "bench", "--provider", "microsoft", "--flow", "device-code", "--client-id", client.client_id,
                "--tenant", client.tenant, "--authority", oauth.url, "--ca-file", str(certificate.cert),
            )
            oauth.issuer.approve(sign_in.wait_for(r"enter the code (\w+)").group(1), user)
            print(sign_in.finish().strip().splitlines()[-1])

            duration = args.minutes * 60
            logs = [(base / f"worker{n}.log").open("w") for n in range(args.workers)]
            workers = [
                PostroomProcess(url, "run", "--verbose", timeout=duration + 300, stdout=log, stderr=subprocess.STDOUT)
                for log in logs
            ]
            started, answered, delivered = time.monotonic(), set[int](), 0
            while time.monotonic() - started < duration:
                dovecot.deliver(user, make_mail(f"Question {delivered}", sender="Carla <carla@example.org>"))
                delivered += 1
                with app.sessions() as session:
                    tickets = set(session.scalars(select(Message.ticket_id).where(Message.ticket_id.is_not(None))))
                for ticket_id in sorted(tickets - answered):
                    queue_reply(app, DEFAULT_CONTACT_CENTER_ID, ticket_id, "Thank you, we are on it.")
                    answered.add(ticket_id)
                time.sleep(3)
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait()
            time.sleep(1)
            with app.sessions() as session:
                profile = session.scalars(select(MediaProfile)).one()
                grant = session.scalars(select(OAuthGrant)).one()
                stored = len(session.scalars(select(Message.id).where(Message.direction == Direction.INBOUND)).all())
                unsent = len(session.scalars(select(SMessageSendInfo.id).where(SMessageSendInfo.sent_at.is_(None))).all())
                status, last_error = profile.status, profile.last_error or grant.last_error
            app.dispose()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        controller.stop()
        dovecot.stop()
        oauth.stop()

    refreshes = oauth.issuer.refreshes(client.client_id)
    raced = len(refreshes) - len({r.refresh_token_used for r in refreshes})
    remaining = [r.replaced_remaining or 0.0 for r in refreshes]
    expected = duration / (args.lifetime * (1 - MARGIN_SHARE))
    print(f"{args.workers} workers, {args.minutes:g} min, tokens of {args.lifetime} s (refreshed with {MARGIN_SHARE:.0%} of their life left)")
    print(f"refreshes counted at the stand-in: {len(refreshes)} "
          f"(one due every {args.lifetime * (1 - MARGIN_SHARE):g} s of the run: about {expected:.1f})")
    print(f"refresh tokens redeemed twice (races): {raced}")
    print(f"life left in replaced tokens: min {min(remaining, default=0):.2f} s, max {max(remaining, default=0):.2f} s")
    print(f"mails delivered {delivered}, stored on tickets {stored}; replies queued {len(answered)}, "
          f"sent {len(smtp.mails)}, unsent {unsent}; SMTP logins refused {smtp.refused}")
    print(f"profile status: {status}{f' ({last_error})' if last_error else ''}; token introspections by Dovecot: {oauth.issuer.introspections}")
    shutil.rmtree(base, ignore_errors=True)
    failed = raced or status != "ok" or smtp.refused or max(remaining, default=0) > args.lifetime * MARGIN_SHARE + 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
