"""What an idle worker's memory is made of: fresh processes that import part of what it imports.

    python -m bench.idle_floors [--pg-url URL]

``bench.idle`` measures whole ``postroom run`` workers; this module measures, in the same run, the
floors under them, each a fresh interpreter that imports one layer and reads its own VmRSS:

- the interpreter alone;
- the database stack a worker carries today: SQLAlchemy Core and ORM with the driver and one
  open connection (sqlite3 or psycopg2);
- what watching mail servers needs, without the database stack: ``postroom`` and the builtin
  protocol plugins (IMAP with IDLE, POP3, Maildir, SMTP), a verified TLS context, the password
  cipher, and the bare DBAPI driver with one connection.

The gap between the last two says how small a process that only waits for mail (and hands mail to
another that stores it) could be; the gap between the database stack and a worker is postroom's own
share. Issue 18's target is 50 MiB for an idle worker with one profile.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench.scratch import DEFAULT_PG_URL

_RSS = "import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"

_CONNECT = {
    "sqlite": "import sqlite3; connection = sqlite3.connect(':memory:'); connection.execute('SELECT 1')",
    "postgresql": (
        "import psycopg2; connection = psycopg2.connect({url!r}); "
        "cursor = connection.cursor(); cursor.execute('SELECT 1')"
    ),
}

_DATABASE_STACK = (
    "import sqlalchemy, sqlalchemy.orm; engine = sqlalchemy.create_engine({sa_url!r}); "
    "connection = engine.connect(); connection.execute(sqlalchemy.text('SELECT 1'))"
)

_MAIL_WAITING = (
    "import ssl, postroom, cryptography.fernet\n"
    "import postroom.plugins.protocols.imap, postroom.plugins.protocols.imap_idle\n"
    "import postroom.plugins.protocols.pop3, postroom.plugins.protocols.maildir, postroom.plugins.protocols.smtp\n"
    "context = ssl.create_default_context()\n"
    "{connect}\n"
    "assert not any(name.split('.')[0] == 'sqlalchemy' for name in __import__('sys').modules)\n"
)


def rss_of(program: str) -> float:
    """VmRSS, MiB, of a fresh interpreter at the end of ``program``."""
    result = subprocess.run(
        [sys.executable, "-c", f"{program}\n{_RSS}"], capture_output=True, text=True, check=True, timeout=120
    )
    return int(result.stdout.split()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a PostgreSQL server to connect to once")
    args = parser.parse_args(argv)
    dsn = args.pg_url.replace("postgresql+psycopg2://", "postgresql://")
    sa_urls = {"sqlite": "sqlite://", "postgresql": args.pg_url}
    print(f"interpreter alone                                  VmRSS {rss_of('pass'):6.1f} MiB")
    for kind in ("sqlite", "postgresql"):
        connect = _CONNECT[kind].format(url=dsn)
        stack = rss_of(_DATABASE_STACK.format(sa_url=sa_urls[kind]))
        waiting = rss_of(_MAIL_WAITING.format(connect=connect))
        print(f"{kind:10} SQLAlchemy Core + ORM, one connection      VmRSS {stack:6.1f} MiB")
        print(f"{kind:10} mail protocols, TLS, cipher, bare driver   VmRSS {waiting:6.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
