"""One worker process of ``bench.coordination``: what ``postroom run`` runs, plus the bench's protocol and counters.

    python -m bench.coordination_worker DATABASE_URL DIRECTORY [--threads 8] [--lease 10]

Builds the app and the ``Worker`` as ``postroom run`` does (``cli/worker.py``: text logging, plugins
started, SIGTERM/SIGINT stop it cleanly), with one difference: the ``bench-sleep`` protocol
(``bench.coordination_protocol``) is registered through the plugin host's ``extra_plugins``, as the
tests register theirs. Twice a second it writes its counters to ``DIRECTORY/counts-<pid>.json``
(atomically): statements sent (all, and those that touch a fetch lease), transactions begun, fetch
cycles run and CPU seconds used. The bench reads them at the start and end of its window, so a
worker SIGKILLed later still counts up to its last write.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench import coordination_protocol
from postroom.core.app import Postroom
from postroom.core.worker.log_format import configure_logging
from postroom.core.worker.scheduler import Worker, install_signal_handlers


class StatementCounter:
    """Statements and transactions this process sends to the database (every thread)."""

    def __init__(self, app: Postroom) -> None:
        self.statements = 0
        self.lease_statements = 0
        self.transactions = 0
        self.lock = threading.Lock()
        event.listen(app.engine, "before_cursor_execute", self._executed)
        event.listen(app.engine, "begin", self._begun)

    def _executed(self, _conn: object, _cursor: object, statement: str, *_: Any) -> None:
        with self.lock:
            self.statements += 1
            if "lease_owner" in statement:
                self.lease_statements += 1

    def _begun(self, _connection: object) -> None:
        with self.lock:
            self.transactions += 1


def write_counts(path: Path, counter: StatementCounter, worker: Worker) -> None:
    with counter.lock:
        counts = {
            "worker": worker.id,
            "statements": counter.statements,
            "lease_statements": counter.lease_statements,
            "transactions": counter.transactions,
        }
    counts.update({"cycles": worker.cycles, "cpu": time.process_time(), "at": time.monotonic()})
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(counts))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--lease", type=int, default=10)
    args = parser.parse_args(argv)

    configure_logging("text", logging.WARNING)
    app = Postroom(
        args.url, extra_plugins=[(coordination_protocol.NAME, coordination_protocol)], start_plugins=True
    )
    app.require_schema()
    counter = StatementCounter(app)
    worker = Worker(app, threads=args.threads, lease=timedelta(seconds=args.lease))
    install_signal_handlers(worker, signal)
    path = args.directory / f"counts-{os.getpid()}.json"

    def report() -> None:
        while not worker.stopping.wait(0.5):
            write_counts(path, counter, worker)

    threading.Thread(target=report, name="bench-counts", daemon=True).start()
    status = worker.run()
    write_counts(path, counter, worker)
    app.dispose()
    return status


if __name__ == "__main__":
    sys.exit(main())
