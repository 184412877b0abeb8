"""A wall-clock time limit on pure-Python work in the calling thread (parsing one mail).

Why this way: the stdlib's email parser is pure Python, so an exception raised asynchronously in
the parsing thread (``PyThreadState_SetAsyncExc``) stops it between two bytecodes. One watchdog
thread serves every guarded call; entering and leaving a guard costs two lock operations and a
few dictionary and set operations (about 2 µs, against about 1 ms to parse an ordinary mail:
``bench/time_limit.py``), where a process per mail would cost a fork or the pickling of the parsed
tree, and a signal would reach only the main thread. Work
inside one long C call (a regular expression, ``bytes.split``) is stopped only when that call returns.

The races are closed by one rule: the watchdog fires only under its lock, only at a guard still
armed, and takes the guard off its list as it fires; a guard being left disarms itself under the
same lock. So the exception is raised only in a thread inside a guard, and a guard left after the
watchdog fired (the work ended, or swallowed the exception, at the very moment) clears what is
still pending and raises it itself: it never surfaces after the ``with`` statement.

An exception that lands in a weak-reference callback or ``__del__`` (the garbage collector runs
them in whichever thread allocates) is printed and dropped by Python (seen once in the suite).
Python hands the dropped exception to ``sys.unraisablehook`` in that thread; the hook here asks
the watchdog to fire once more at that thread's guard, if it is still inside it, and prints nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import threading
import time
from types import TracebackType
from typing import Any

#: How soon the watchdog fires again at a guard whose exception Python dropped.
REFIRE_SECONDS = 0.05


class TimeLimitExceeded(BaseException):
    """The guarded work ran past its time limit.

    A BaseException, like KeyboardInterrupt, so that the parser's ``except Exception`` clauses,
    which salvage what they can of a broken part, cannot swallow it.
    """


# Both prototypes hold the GIL during the call (PYFUNCTYPE), as the C API requires.
_raise_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


class _Watch:
    """One armed guard: the thread it guards and when its time is up."""

    __slots__ = ("deadline", "fired", "thread_id")

    def __init__(self, thread_id: int, deadline: float) -> None:
        self.thread_id = thread_id
        self.deadline = deadline
        self.fired = False


class _Watchdog:
    """The one thread that raises :class:`TimeLimitExceeded` in guarded threads past their deadline.

    A guarded thread touches only a plain ``threading.Lock`` entered with ``with`` (acquired and
    released in C, so an exception arriving in between cannot leave it held) and rings the
    watchdog's bell, another plain lock, by releasing it: nothing that Python code locks and an
    asynchronous exception could leave locked (as in ``threading.Condition``).
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has no watchdog thread

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._bell = threading.Lock()  # held: not rung; released: rung
        self._bell.acquire()
        self._armed: set[_Watch] = set()
        self._guards: dict[int, _Watch] = {}  # thread id -> the guard it is inside
        self._wake_at = math.inf
        self._starting = threading.Lock()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> _Watch:
        if self._thread is None:  # started before any guard of this thread is armed
            with self._starting:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="postroom-time-limit", daemon=True)
                    thread.start()
                    self._thread = thread
        watch = _Watch(threading.get_ident(), time.monotonic() + seconds)
        with self._lock:
            self._armed.add(watch)
            self._guards[watch.thread_id] = watch
            ring = watch.deadline < self._wake_at  # otherwise the watchdog wakes early enough anyway
        if ring:
            self._ring()
        return watch

    def _ring(self) -> None:
        with contextlib.suppress(RuntimeError):  # rung already
            self._bell.release()

    def disarm(self, watch: _Watch) -> bool:
        """Take a guard off the list; whether the watchdog had already fired at it."""
        with self._lock:
            self._armed.discard(watch)
            if self._guards.get(watch.thread_id) is watch:
                del self._guards[watch.thread_id]
            return watch.fired

    def fire_again(self, thread_id: int) -> None:
        """The exception fired at ``thread_id`` was dropped: fire once more if it is still in that guard."""
        with self._lock:
            watch = self._guards.get(thread_id)
            if watch is None or not watch.fired or watch in self._armed:
                return
            watch.deadline = time.monotonic() + REFIRE_SECONDS  # soon, not in a tight loop of drops
            self._armed.add(watch)
        self._ring()

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                for watch in [w for w in self._armed if w.deadline <= now]:
                    self._armed.discard(watch)
                    watch.fired = True
                    _raise_in(watch.thread_id, TimeLimitExceeded)
                self._wake_at = min((w.deadline for w in self._armed), default=math.inf)
                wait = -1 if self._wake_at == math.inf else self._wake_at - now
            self._bell.acquire(timeout=wait)


_WATCHDOG = _Watchdog()


def _unraisable(unraisable: Any, previous: Any = sys.unraisablehook) -> None:
    """Python's report of an exception it had to drop; ours is fired again instead (see above)."""
    if isinstance(unraisable.exc_value, TimeLimitExceeded):
        _WATCHDOG.fire_again(threading.get_ident())
    else:
        previous(unraisable)


sys.unraisablehook = _unraisable


class time_limit:
    """Raise :class:`TimeLimitExceeded` in this thread if the ``with`` body runs ``seconds`` or longer.

    The exception comes out of the ``with`` statement (never later); catch it around the statement.
    """

    __slots__ = ("_watch", "seconds")

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"a time limit must be positive, not {seconds}")
        self.seconds = seconds

    def __enter__(self) -> None:
        self._watch = _WATCHDOG.arm(self.seconds)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not _WATCHDOG.disarm(self._watch):
            return  # never fired, and never will: the guard is off the list
        # Fired: clear what may still be pending. Should it arrive before the clear, it leaves this
        # method: still inside the statement.
        _clear_in(self._watch.thread_id, None)
        if exc_type is not None:
            return  # the watchdog's exception on its way out (or another, which is left to go)
        raise TimeLimitExceeded  # it was swallowed, or the work ended as the watchdog fired
