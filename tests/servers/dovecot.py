"""A throwaway Dovecot 2.3 (IMAP, IMAPS, POP3, POP3S) started once per test session.

Tests ask the ``dovecot`` fixture for a fresh user each (``new_user``) so they never see each
other's mail, and place or inspect mail through IMAP as that user.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

from postroom.core.contract.protocols import ConnectionSettings
from tests.servers.certs import Certificate

HOST = "127.0.0.1"
#: nobody/nogroup: Dovecot refuses to access mail as root, so the mail folders belong to them.
MAIL_UID = MAIL_GID = 65534
DOMAIN = "example.test"

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
listen = {host}
protocols = imap pop3
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
# xoauth2/oauthbearer hand the token to the passdb like a password, so a user's password doubles
# as a valid access token and XOAUTH2 logins can be tested without an OAuth2 server.
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
mail_location = maildir:{base}/mail/%u
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
{users}
service imap-login {{
{chroot}  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
{chroot}  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = {pop3s_port}
    ssl = yes
  }}
}}
# Failed logins answer at once: the penalty socket is made unusable and the delay is zero.
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

ROOT_USERS = """\
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
"""


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out, all held open at once so they differ from each other."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ensure_dovecot_installed() -> str:
    """The dovecot binary, installing the Debian packages first when missing and we may."""
    binary = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/bin")
    if binary is None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "dovecot-imapd", "dovecot-pop3d"]
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            # A fresh machine may not have package lists yet.
            subprocess.run(["apt-get", "update"], check=True, capture_output=True, env=env)
            subprocess.run(install, check=True, capture_output=True, env=env)
        binary = shutil.which("dovecot", path="/usr/sbin:/usr/bin")
    if binary is None:
        raise RuntimeError("dovecot is not installed: apt-get install -y dovecot-imapd dovecot-pop3d")
    return binary


class Dovecot:
    """One running Dovecot, its ports, and helpers to manage users and their mail over IMAP."""

    def __init__(self, base: Path, certificate: Certificate) -> None:
        self.base = base
        self.certificate = certificate
        self.host = HOST
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = free_ports(4)
        self.passwords: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.base / "dovecot.conf"

    def write_config(self) -> None:
        mail = self.base / "mail"
        mail.mkdir(exist_ok=True)
        (self.base / "users").mkdir(mode=0o755, exist_ok=True)
        root = os.geteuid() == 0
        if root:
            os.chown(mail, MAIL_UID, MAIL_GID)
            users, chroot = ROOT_USERS, ""
        else:
            # Unprivileged, every Dovecot process runs as us and none may chroot.
            me = pwd.getpwuid(os.getuid()).pw_name
            roles = ("internal_user", "internal_group", "login_user")
            users = "".join(f"default_{role} = {me}\n" for role in roles)
            chroot = "  chroot =\n"
        self.config_path.write_text(
            CONFIG.format(
                chroot=chroot,
                base=self.base,
                host=self.host,
                cert=self.certificate.cert,
                key=self.certificate.key,
                uid=MAIL_UID if root else os.getuid(),
                gid=MAIL_GID if root else os.getgid(),
                users=users,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                pop3_port=self.pop3_port,
                pop3s_port=self.pop3s_port,
            )
        )

    def start(self, attempts: int = 3) -> None:
        binary = ensure_dovecot_installed()
        for attempt in range(1, attempts + 1):
            self.write_config()
            # A stale anvil socket from an earlier start stalls start-up for five seconds.
            shutil.rmtree(self.base / "run", ignore_errors=True)
            # In the foreground, the master stays our child so that stop() can reap it.
            with (self.base / "stderr.log").open("wb") as stderr:
                self._process = subprocess.Popen(
                    [binary, "-F", "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                )
            try:
                self._wait_until_ready()
                return
            except RuntimeError:
                self.stop()
                # Another process took one of the free ports between choosing and binding it.
                if attempt == attempts or "Address already in use" not in self.log():
                    raise
                self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = free_ports(4)

    def _wait_until_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {self.imap_port: True, self.pop3_port: True, self.imaps_port: False, self.pop3s_port: False}
        while pending:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start-up: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not open ports {sorted(pending)}: {self.log()}")
            for port, greets in list(pending.items()):
                try:
                    with socket.create_connection((self.host, port), timeout=1) as sock:
                        # Plain ports greet; TLS ports only accept until the client speaks first.
                        if not greets or sock.recv(64):
                            del pending[port]
                except OSError:
                    pass
            if pending:
                time.sleep(0.02)

    def stop(self) -> None:
        if self._process is None:
            return
        pid_file = self.base / "run" / "master.pid"
        pids = {self._process.pid}
        if pid_file.exists():
            pids.add(int(pid_file.read_text().split()[0]))
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        self._process = None

    def log(self) -> str:
        """What Dovecot wrote to stderr and its log file, for failure messages."""
        paths = [self.base / "stderr.log", self.base / "dovecot.log"]
        return "".join(path.read_text(errors="replace") for path in paths if path.exists())

    # --- users and mail ----------------------------------------------------------------------

    def port_for(self, protocol: str) -> int:
        """The port of a protocol by its postroom NAME: imap, imaps, pop3 or pop3s."""
        return {
            "imap": self.imap_port,
            "imaps": self.imaps_port,
            "pop3": self.pop3_port,
            "pop3s": self.pop3s_port,
        }[protocol]

    def settings(
        self,
        user: str,
        protocol: str,
        *,
        folder: str | None = "INBOX",
        tls_verify: bool = False,
        password: str | None = None,
        access_token: str | None = None,
        profile_name: str = "support",
    ) -> ConnectionSettings:
        """Connection settings for ``user`` over ``protocol`` (imap, imaps, pop3, pop3s).

        Verification is off by default because the certificate is self-signed; the password is
        the user's own unless given (or unless an ``access_token`` is given instead).
        """
        if password is None and access_token is None:
            password = self.passwords[user]
        return ConnectionSettings(
            profile_id=1,
            profile_name=profile_name,
            host=self.host,
            port=self.port_for(protocol),
            username=user,
            password=password,
            folder=folder,
            tls_verify=tls_verify,
            timeout=10.0,
            access_token=access_token,
        )

    def new_user(self, prefix: str = "user", *, extra_fields: str = "") -> tuple[str, str]:
        """Create a user nobody else uses and return ``(username, password)``.

        ``extra_fields`` are passwd-file extra fields, e.g. ``"userdb_imap_capability=IMAP4rev1"``
        to change what Dovecot offers this user after login.
        """
        with self._lock:
            username = f"{prefix}{next(self._counter)}@{DOMAIN}"
            password = secrets.token_hex(8)
            # One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a second,
            # so a user appended to a shared file right after another login could not log in yet.
            line = f"{username}:{{PLAIN}}{password}::::::{extra_fields}\n"
            (self.base / "users" / username).write_text(line)
            self.passwords[username] = password
        return username, password

    @contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """A logged-in IMAP session as ``user`` over the plain port, logged out afterwards."""
        client = IMAPClient(self.host, self.imap_port, ssl=False, timeout=10)
        try:
            client.login(user, self.passwords[user])
            yield client
        finally:
            try:
                client.logout()
            except Exception:
                client.shutdown()

    def create_folder(self, user: str, name: str) -> None:
        with self.client(user) as client:
            if not client.folder_exists(name):
                client.create_folder(name)

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX", date: datetime | None = None) -> int:
        """Place one unread mail in ``folder`` (created if missing) and return its UID.

        ``date`` becomes the IMAP internal date, which IMAP SEARCH SINCE looks at.
        """
        return self.deliver_many(user, [raw], folder, date)[0]

    def deliver_many(
        self, user: str, raws: Sequence[bytes], folder: str = "INBOX", date: datetime | None = None
    ) -> list[int]:
        """Place several unread mails over one connection; their UIDs, in order."""
        uids = []
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in raws:
                response = client.append(folder, raw, flags=(), msg_time=date)
                # "[APPENDUID <uidvalidity> <uid>] Append completed."
                uids.append(int(response.split(b"]")[0].split()[-1]))
        return uids

    def count(self, user: str, folder: str = "INBOX") -> int:
        """How many mails ``folder`` holds, including those flagged deleted but not expunged."""
        with self.client(user) as client:
            return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw bytes of every mail in ``folder``, in UID order, without marking them seen."""
        return [raw for raw, _flags in self._fetch(user, folder)]

    def flags_all(self, user: str, folder: str = "INBOX") -> list[tuple[bytes, ...]]:
        """The flags of every mail in ``folder``, in UID order."""
        return [flags for _raw, flags in self._fetch(user, folder)]

    def _fetch(self, user: str, folder: str) -> list[tuple[bytes, tuple[bytes, ...]]]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            return [(data[uid][b"BODY[]"], data[uid][b"FLAGS"]) for uid in uids]


@pytest.fixture(scope="session")
def dovecot(certificate: Certificate) -> Iterator[Dovecot]:
    """One Dovecot for the whole session; use ``dovecot.new_user()`` per test to stay isolated."""
    base = Path(tempfile.mkdtemp(prefix="dv", dir="/tmp"))
    # Dovecot's auth process runs as user dovecot and must reach the passwd-files under BASE.
    base.chmod(0o755)
    server = Dovecot(base, certificate)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
