"""One worker per SQLite database file: an advisory lock beside the file, taken when ``postroom run`` starts."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError


class SqliteWorkerLock:
    """SQLite allows one worker per database file: a second one is told so and exits."""

    def __init__(self, app: Postroom) -> None:
        self.handle: IO[str] | None = None
        database = app.engine.url.database
        self.path = Path(f"{database}.worker-lock") if database and database != ":memory:" else None

    def acquire(self, inherited: int | None = None) -> None:
        """Lock the database file for this worker, or keep the lock ``inherited`` from the process's
        previous image (the standby and the engine hand it over: ``standby_switch.py``)."""
        if self.path is None:
            return
        if inherited is not None and self._adopt(inherited):
            return
        handle = self.path.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            database = self.path.with_suffix("")
            raise UserError(
                f"Another postroom worker is already running on the SQLite database {database}; "
                "SQLite supports one worker — use PostgreSQL to run several."
            ) from None
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    def _adopt(self, descriptor: int) -> bool:
        """Take over the lock file's descriptor the exec kept open: the lock belongs to its open file."""
        try:
            same = os.path.samestat(os.fstat(descriptor), self.path.stat()) if self.path else False
        except OSError:
            return False
        if not same:
            return False
        os.set_inheritable(descriptor, False)
        self.handle = open(descriptor, "w", closefd=True)  # noqa: SIM115 (held until release)
        return True

    def descriptor(self) -> int | None:
        """The locked file's descriptor, to hand to the next image of this process (not unlocked)."""
        return self.handle.fileno() if self.handle is not None else None

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
