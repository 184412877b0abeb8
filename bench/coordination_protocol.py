"""``bench-sleep``: a fetch protocol that needs no server, for ``bench.coordination``.

Each fetch sleeps a little (the server's round trips) and, on a share of fetches, finds a few new
mails, generated on the spot with unique keys ("delete on fetch" removes nothing: they are gone
once listed). Opening and closing the mailbox is written to a fetch ledger, one file per worker
process: ``S``/``E`` lines with the worker's pid, the profile id and ``time.monotonic()`` (one
clock for every process on the machine), each line one unbuffered ``O_APPEND`` write, so a
SIGKILLed worker leaves its last start behind. ``bench.coordination_ledger`` checks that no two
fetches of one profile overlapped. The mailbox is opened after the lease is taken and closed
before the cycle's commit gives it back, so an overlap would be two workers fetching at once.

Configured by environment variables the bench sets for its worker processes (``BENCH_LEDGER``,
``BENCH_SLEEP``, ``BENCH_MAIL_SHARE``, ``BENCH_MAILS``); registered in the worker process through
the plugin host's ``extra_plugins``, as the tests register theirs.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date

from postroom import (
    ConnectionSettings,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolPlugin,
    Sender,
    SendFailure,
    hookimpl,
)

NAME = "bench-sleep"


class Ledger:
    """This process's fetch ledger file (opened on first use)."""

    fd: int | None = None

    @classmethod
    def write(cls, kind: str, profile_id: int) -> None:
        if cls.fd is None:
            directory = os.environ.get("BENCH_LEDGER")
            if not directory:
                return
            path = os.path.join(directory, f"ledger-{os.getpid()}.txt")
            cls.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(cls.fd, f"{kind} {os.getpid()} {profile_id} {time.monotonic():.6f}\n".encode())


def probe_mail(key: str, profile: str) -> bytes:
    return (
        f"From: Customer <{key}@example.org>\r\nTo: support@example.test\r\n"
        f"Subject: Coordination probe for {profile}\r\nMessage-ID: <{key}@bench.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA probe.\r\n"
    ).encode()


class SleepMailbox(Mailbox):
    """One fetch: a sleep, and now and then a few new mails."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.profile_id = settings.profile_id
        self.profile = settings.profile_name
        Ledger.write("S", self.profile_id)
        time.sleep(float(os.environ.get("BENCH_SLEEP", "0.01")))
        share = float(os.environ.get("BENCH_MAIL_SHARE", "0.05"))
        count = int(os.environ.get("BENCH_MAILS", "3")) if random.random() < share else 0
        self.mails = {uuid.uuid4().hex: b"" for _ in range(count)}

    def list_mail(self, since: date | None) -> list[MailRef]:
        self.mails = {key: probe_mail(key, self.profile) for key in self.mails}
        return [MailRef(key, len(raw)) for key, raw in self.mails.items()]

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        for key in keys:
            if key in self.mails:
                yield FetchedMail(key, self.mails[key])

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.mails.pop(key, None)

    def close(self) -> None:
        Ledger.write("E", self.profile_id)


class SleepProtocol(ProtocolPlugin):
    """Fetch from nowhere: a sleep and a few generated mails (bench only)."""

    NAME = NAME
    LABEL = "Bench: a sleep and a few mails (no server)"
    CAN_FETCH = True
    CAN_SEND = False
    NEEDS_HOST = False
    NEEDS_FOLDER = False

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        return SleepMailbox(settings)

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        raise SendFailure("The bench-sleep protocol cannot send mail.", kind="internal")


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [SleepProtocol]
