"""The per-family table of the bounce corpus: what the readers read and where each bounce landed.

    .venv/bin/python scripts/bounce_families.py

Stores every sample of tests/bounces/corpus through the real inbound pipeline (a throw-away SQLite
database, profile ``support`` with the ``customer`` resolver, each sample's sender configured as a
failure-mail address) onto a fresh open ticket of the failed customer, and prints one row per family.
The test tests/bounces/test_bounce_corpus.py asserts the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        os.environ["POSTROOM_HOME"] = home
        os.environ.pop("POSTROOM_DATABASE_URL", None)
        from postroom.core.app import Postroom
        from tests.bounces.corpus import SAMPLES, land
        from tests.support.desk import Desk

        app = Postroom(f"sqlite:///{home}/postroom.sqlite")
        app.init()
        desk = Desk(app, ["customer"]).setup()
        rows = []
        for sample in SAMPLES:
            landing = land(app, desk, sample)
            recipient = next(
                (r for r in (landing.report.recipients if landing.report else []) if r.address == sample.hard), None
            )
            rows.append([
                sample.family,
                sample.source,
                landing.report.format if landing.report else "-",
                recipient.status or "-" if recipient else "-",
                recipient.reason if recipient else "-",
                ("hard" if recipient.hard else "soft") if recipient else "-",
                "yes" if landing.report and landing.report.original_message_ids else "no",
                "yes" if landing.right else "NO",
            ])
        app.dispose()
    headers = ["family", "sample", "read as", "status", "reason", "hard", "orig. Message-ID", "landed+escalated"]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    right = sum(row[-1] == "yes" for row in rows)
    print(f"\n{right} of {len(rows)} families land on the failed customer's ticket, escalated.")
    return 0 if right == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
