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

    def acquire(self) -> None:
        if self.path is None:
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

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
