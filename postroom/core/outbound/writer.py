"""The outcome writer: one thread and one unsynced connection that record outcomes while the next mail goes out.

It knows nothing of the outbox's rules: it runs the functions it is given, in order, one at a
time, and lets the sender wait for the last one before the server can hold the next mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import Connection, Engine

from postroom.core.contract.errors import UserError
from postroom.core.data.db import is_postgresql

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class OutcomeNotRecorded(UserError):
    """Recording an outcome failed (the database, or a signal receiver); the run stops, the cause is chained.

    A user error so that ``postroom send`` and the worker report it in one sentence: the cause is
    most often the database going away, which the operator has to see and fix.
    """


class OutcomeWriter:
    """Records outcomes on a thread and connection of its own while the next mail is on its way.

    The outcome of mail N is written and committed while mail N+1's envelope is exchanged with
    the server, which hides the database's round trips behind the SMTP ones. At most one
    outcome is outstanding: :meth:`submit` waits for the previous one, and the sender calls
    :meth:`wait` (its ``ready``) right before the server can hold mail N+1. So, as without the
    thread, a sender killed at any moment leaves at most one delivered mail unrecorded.

    Claims, loads and lease renewals run here too (:meth:`run`), so one connection, an
    :func:`unsynced_connection`, serves the whole run. Whatever a submitted function does after
    its commit (the outbox sends its signals) happens on this thread too.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postroom-outcomes")
        self._resources = ExitStack()
        self._connection: Connection | None = None
        self._pending: tuple[int, Future[None]] | None = None

    def __enter__(self) -> Self:
        try:
            # Opened on the writer's thread, so that the connection is only ever used there.
            self._connection = self._executor.submit(
                self._resources.enter_context, unsynced_connection(self.engine)
            ).result()
        except BaseException:
            self._executor.shutdown()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.wait()
        except OutcomeNotRecorded:
            if exc is None:
                raise
            log.exception("recording the last outcome failed as well")
        finally:
            self._executor.submit(self._resources.close).result()
            self._executor.shutdown()

    def run(self, function: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(connection, ...)`` on the writer's thread and connection, after the pending outcome."""
        self.wait()
        return self._executor.submit(partial(function, self._live_connection(), *args, **kwargs)).result()

    def run_after_failure(
        self, function: Callable[[Connection, str, Sequence[int]], None], *args: Any
    ) -> None:
        """Like :meth:`run` while another error is on its way: a failure here is logged, not raised."""
        try:
            with suppress(OutcomeNotRecorded):
                self.wait()  # already reported, or about to be, by the error on its way
            self._executor.submit(partial(function, self._live_connection(), *args)).result()
        except Exception:
            log.exception("giving back the claim failed; its rows come back when the lease expires")

    def submit(
        self,
        row_id: int,
        record: Callable[Concatenate[Connection, P], None],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """``record(connection, ...)``, the outcome of outbox row ``row_id``, once the previous one is committed.

        ``record`` commits its own work; its failure is raised by the next :meth:`wait`.
        """
        self.wait()
        job = partial(record, self._live_connection(), *args, **kwargs)
        self._pending = (row_id, self._executor.submit(job))

    def wait(self) -> None:
        """Return once every submitted outcome is committed; raise :class:`OutcomeNotRecorded` if one failed."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        row_id, future = pending
        try:
            future.result()
        except Exception as error:
            log.error("recording the outcome of outbox row %s failed", row_id, exc_info=error)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise OutcomeNotRecorded(
                f"Recording the outcome of outbox row {row_id} failed ({reason}); "
                "the run stopped and gave its unsent replies back."
            ) from error

    def _live_connection(self) -> Connection:
        assert self._connection is not None, "the writer is used outside its with block"
        return self._connection


@contextmanager
def unsynced_connection(engine: Engine) -> Iterator[Connection]:
    """A connection whose commits do not wait for the disk: for the outbox's claims and outcomes.

    On PostgreSQL ``synchronous_commit`` is off, on SQLite (in WAL mode) ``synchronous`` is
    NORMAL. Either survives the sender being killed; only a crash of the database server or the
    machine can lose the last fraction of a second of commits. A lost claim or outcome puts its
    reply back in the queue, to be sent again after the lease, which at-least-once delivery
    allows; a claim still excludes every other sender while the database runs, durable or not.
    Waiting for the disk instead would cost more per mail than the SMTP transaction itself.

    On PostgreSQL the connection is also in autocommit mode: each statement is its own
    transaction, one round trip instead of three (BEGIN, statement, COMMIT), which on a busy
    machine is CPU the SMTP exchange needs. Every outbox statement is correct on its own.
    """
    postgresql = is_postgresql(engine)
    relaxed, strict = (
        ("SET synchronous_commit TO OFF", "RESET synchronous_commit")
        if postgresql
        else ("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL")
    )
    with engine.connect() as connection:
        if postgresql:
            connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(relaxed)
        connection.commit()
        try:
            yield connection
        finally:
            try:
                if not connection.invalidated:
                    connection.rollback()
                    connection.exec_driver_sql(strict)
                    connection.commit()
            except Exception:
                # Back in the pool it would make the next user's commits unsynced as well: an
                # inbound batch must be on disk before its mails leave the server. So it goes.
                log.warning("could not restore synchronous commits; dropping the connection", exc_info=True)
                connection.invalidate()
