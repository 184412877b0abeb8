"""Benchmark: listing a folder kept on the server, cycle after cycle.

    python -m bench.kept_listing [--mails N] [--repeat R]

Starts its own Dovecot (the test suite's helper) and loads N small mails (default 50,000) into
one folder. Then, each as the best of R runs (default 5): (a) the raw cost of listing the whole
folder, one imapclient ``UID SEARCH ALL``; (b) ``ImapMailbox.list_mail`` the first time in a
process (a whole listing); (c) ``list_mail`` in a later cycle with one new mail, which asks only
for the UIDs above the known ones. Connecting and logging in are outside every timing. It prints
(c) against (a): what a fetch cycle of a kept mailbox now costs against what it used to.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from postroom.plugins.protocols import imap
from postroom.plugins.protocols.imap import ImapProtocol
from tests.servers.certs import make_certificate
from tests.servers.dovecot import Dovecot, make_mail


def best(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="dvk", dir="/tmp"))
    base.chmod(0o755)
    (base / "cert").mkdir(mode=0o755)
    dovecot = Dovecot(base, make_certificate(base / "cert"))
    dovecot.start()
    try:
        user, _ = dovecot.new_user("kept")
        mail = make_mail("Kept on the server")
        with dovecot.client(user) as client:
            for start in range(0, args.mails, 500):
                client.multiappend("INBOX", [mail] * min(500, args.mails - start))
        settings = dovecot.settings(user, "imap")

        def raw() -> float:
            with dovecot.client(user) as client:
                client.select_folder("INBOX", readonly=True)
                started = time.perf_counter()
                client.search(["ALL"])
                return time.perf_counter() - started

        def listing(first: bool) -> float:
            if first:
                imap._listed.clear()
            else:
                dovecot.deliver(user, mail)
            with ImapProtocol().open_mailbox(settings) as mailbox:
                started = time.perf_counter()
                refs = mailbox.list_mail(None)
                seconds = time.perf_counter() - started
            assert len(refs) >= args.mails
            return seconds

        raw_seconds = best(args.repeat, raw)
        first_seconds = best(args.repeat, lambda: listing(first=True))
        listing(first=False)  # the first incremental cycle follows a whole listing
        later_seconds = best(args.repeat, lambda: listing(first=False))
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(f"{args.mails} mails kept in one folder, best of {args.repeat}")
    print(f"  (a) raw UID SEARCH ALL                 {raw_seconds * 1000:8.1f} ms")
    print(f"  (b) list_mail, first in the process    {first_seconds * 1000:8.1f} ms")
    print(
        f"  (c) list_mail, a later cycle           {later_seconds * 1000:8.1f} ms  ratio (c)/(a) {later_seconds / raw_seconds:.3f}"
    )


if __name__ == "__main__":
    main()
