"""The worker's IDLE watcher: mailboxes that announce new mail start their fetch cycle at once.

A profile whose protocol can wait for new mail (``ProtocolPlugin.CAN_WAIT_FOR_MAIL``: IMAP IDLE)
and whose switch is on (``profile add/modify --idle``) stays leased by the worker that fetched it
last, and that worker keeps a connection waiting on its folder. News (IMAP ``EXISTS``) only asks the
scheduler to run the profile's normal fetch cycle, so every mail still takes the
store-before-acknowledge path; polling goes on at the profile's interval as the safety net. A
profile whose lease the renewer finds lost stops being watched here.

Design, from a measurement (``python -m bench.idle_threads --connections 100 500 1000`` on this
machine, 2 cores, Python 3.11): a thread blocked in a socket read costs 16 KB of resident memory
(and 8 MB of address space), a socket registered with one selector 0.2 to 0.3 KB:

    ======== ===== ================ ===============
    design   N     RSS grown by     per connection
    ======== ===== ================ ===============
    threads  100   1,612 KiB        16.1 KiB
    threads  500   8,056 KiB        16.1 KiB
    threads  1000  16,088 KiB       16.1 KiB
    selector 100   28 KiB           0.3 KiB
    selector 500   88 KiB           0.2 KiB
    selector 1000  180 KiB          0.2 KiB
    ======== ===== ================ ===============

So one selector thread waits on every IDLE socket and never blocks on the network. Connecting and
logging in (TLS handshakes, seconds against a slow server) and logging out happen in a small pool
of threads instead; so does the DONE/IDLE renewal, which waits for the server's answer (up to the
profile's timeout, 30 s): a server slow to answer it holds one renewal thread, not the selector, so
every other mailbox's news is still read at once. A connection being renewed is off the selector.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from postroom.core.contract.protocols import MailWaiter, ProtocolError

log = logging.getLogger("postroom.worker.idle")

#: RFC 2177: servers may end an IDLE after 30 minutes (29 to be safe); renewed well before.
RENEW_EVERY = 25 * 60.0
#: Reconnect waits: the first after a drop, doubling per failure up to the last.
FIRST_RECONNECT = 1.0
MAX_RECONNECT = 300.0
#: A connection up this long before it dropped starts the reconnect waits afresh.
STEADY = 60.0
#: Threads that connect, log in and log out (the selector thread never does).
CONNECTORS = 4
#: Threads that end and restart IDLE commands (DONE/IDLE) before the server's limit.
RENEWERS = 4

#: Reads a watched profile: its name (for the log) and a function that connects, logs in and starts
#: waiting (returning None where the server offers no IDLE); None if the profile is gone. The
#: engine reads the profile through the ORM (``idle_schedule.py``), the standby through its bare
#: driver (``standby.py``): this module imports no database code, so both can use it.
Opener = Callable[[int], tuple[str, Callable[[], MailWaiter | None]] | None]


@dataclass
class _Watch:
    profile_id: int
    #: The profile's name for the log (its id until the first connection reads it).
    name: str = ""
    waiter: MailWaiter | None = None
    since: float = 0.0
    failures: int = 0
    retry_at: float = 0.0
    connecting: bool = False
    #: A renewal thread is ending and restarting its IDLE (the selector leaves it alone meanwhile).
    renewing: bool = False
    ended: bool = False


class IdleWatcher:
    """One selector thread over every watched profile's waiting connection.

    ``on_news(profile_id)`` is called (from the selector or a connector thread) when a profile
    should be fetched now: new mail, or a (re)connection, after which mail that came while no
    connection waited would otherwise wait for the poll.
    """

    def __init__(
        self,
        opener: Opener,
        on_news: Callable[[int], None],
        *,
        is_outage: Callable[[BaseException], bool],
        renew_every: float = RENEW_EVERY,
    ) -> None:
        self.opener = opener
        #: Whether an error opening a connection says the database is gone (then it is tried again).
        self.is_outage = is_outage
        self.on_news = on_news
        self.renew_every = renew_every
        self.lock = threading.Lock()
        self.watches: dict[int, _Watch] = {}
        #: Watches unwatched since the selector thread last looked: it closes their connections.
        self.ending: list[_Watch] = []
        #: Profiles whose server does not advertise IDLE: polled only, not held.
        self.unsupported: set[int] = set()
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        #: IDLE commands ended and restarted before the server's limit, since the start (for /health).
        self.renewals = 0
        #: Renewals under way in the renewal threads.
        self.renewing = 0
        self.stopping = threading.Event()
        self.connectors = ThreadPoolExecutor(CONNECTORS, thread_name_prefix="postroom-idle-connect")
        self.renewers = ThreadPoolExecutor(RENEWERS, thread_name_prefix="postroom-idle-renew")
        self.thread = threading.Thread(target=self._loop, name="postroom-idle", daemon=True)

    # --- the worker's side ------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._wake()
        self.thread.join(timeout=30)
        with self.lock:
            watches, self.watches = list(self.watches.values()), {}
            watches += self.ending
            self.ending = []
            for watch in watches:
                watch.ended = True
        for watch in watches:
            if not watch.renewing:  # a renewal closes its connection when it returns
                self._close(watch)
        self.renewers.shutdown(wait=True)
        self.connectors.shutdown(wait=True)

    def watch(self, profile_id: int) -> None:
        """Start watching the profile (no-op if watched already)."""
        with self.lock:
            if profile_id in self.watches or self.stopping.is_set():
                return
            watch = self.watches[profile_id] = _Watch(profile_id, str(profile_id))
        self._connect_later(watch, 0.0)

    def unwatch(self, profile_id: int) -> None:
        with self.lock:
            watch = self.watches.pop(profile_id, None)
            if watch is not None:
                watch.ended = True
                self.ending.append(watch)
        if watch is not None:
            self._wake()  # the selector thread unregisters and closes it

    def watched(self) -> set[int]:
        with self.lock:
            return set(self.watches)

    def connections(self) -> int:
        with self.lock:
            return sum(1 for w in self.watches.values() if w.waiter is not None)

    # --- connecting (connector threads) -----------------------------------------------------------

    def _connect_later(self, watch: _Watch, delay: float) -> None:
        watch.connecting = True
        watch.retry_at = time.monotonic() + delay
        if delay <= 0:
            self._submit_connect(watch)
        else:
            self._wake()  # the loop submits it when due

    def _submit_connect(self, watch: _Watch) -> None:
        watch.retry_at = float("inf")
        with contextlib.suppress(RuntimeError):  # shut down
            self.connectors.submit(self._connect, watch)

    def _connect(self, watch: _Watch) -> None:
        if watch.ended or self.stopping.is_set():
            return
        try:
            waiter = self._open(watch)
        except ProtocolError as error:
            watch.failures += 1
            delay = min(FIRST_RECONNECT * 2 ** (watch.failures - 1), MAX_RECONNECT)
            log.warning("profile %s: IDLE failed: %s (again in %.0f s)", watch.name, error, delay)
            self._connect_later(watch, delay)
            return
        except Exception as error:
            if self.is_outage(error):  # the worker's outage log says so once; try again later
                watch.failures += 1
                self._connect_later(watch, min(FIRST_RECONNECT * 2 ** (watch.failures - 1), MAX_RECONNECT))
                return
            log.exception("profile %s: IDLE could not be started; polling only", watch.name)
            self.unwatch(watch.profile_id)
            return
        if waiter is None:
            log.info("profile %s: the server offers no IDLE; polled only", watch.name)
            self.unsupported.add(watch.profile_id)
            self.unwatch(watch.profile_id)
            return
        watch.waiter, watch.since, watch.connecting = waiter, time.monotonic(), False
        if watch.ended or self.stopping.is_set():
            self._close(watch)
            return
        if watch.failures:
            log.info("profile %s: IDLE connection restored; waiting for new mail", watch.name)
        else:
            log.info("profile %s: waiting for new mail (IDLE)", watch.name)
        self._wake()  # the loop registers it
        # Mail that arrived before the wait began is announced by nobody: fetch once now.
        self.on_news(watch.profile_id)

    def _open(self, watch: _Watch) -> MailWaiter | None:
        opened = self.opener(watch.profile_id)
        if opened is None:
            return None
        watch.name, connect = opened
        return connect()

    def _close(self, watch: _Watch) -> None:
        with self.lock:  # once, whichever thread gets here first
            waiter, watch.waiter = watch.waiter, None
        if waiter is not None:
            try:
                self.connectors.submit(waiter.close)
            except RuntimeError:  # shutting down: close here
                waiter.close()

    # --- the selector thread ----------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _loop(self) -> None:
        registered: dict[int, _Watch] = {}  # by file number
        while not self.stopping.is_set():
            self._sync(registered)
            for key, _events in self.selector.select(timeout=1.0):
                if key.data is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                watch: _Watch = key.data
                self._read(watch, registered)
            self._renew_due(registered)

    def _sync(self, registered: dict[int, _Watch]) -> None:
        """Register new connections, drop ended ones, submit reconnections that are due."""
        now = time.monotonic()
        with self.lock:
            live = list(self.watches.values())
            ending, self.ending = self.ending, []
        for watch in ending:
            for fileno, other in list(registered.items()):
                if other is watch:
                    self._unregister(fileno, registered)
            if not watch.renewing:  # a renewal closes it when it returns
                self._close(watch)
        for fileno, watch in list(registered.items()):
            if watch.ended or watch.waiter is None:
                self._unregister(fileno, registered)
                self._close(watch)
        for watch in live:
            if watch.connecting and watch.retry_at <= now:
                self._submit_connect(watch)
            elif watch.waiter is not None and not watch.connecting and not watch.renewing:
                try:
                    fileno = watch.waiter.fileno()
                except Exception:
                    fileno = -1
                if fileno >= 0 and fileno not in registered:
                    self.selector.register(fileno, selectors.EVENT_READ, watch)
                    registered[fileno] = watch

    def _unregister(self, fileno: int, registered: dict[int, _Watch]) -> None:
        registered.pop(fileno, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(fileno)

    def _read(self, watch: _Watch, registered: dict[int, _Watch]) -> None:
        waiter = watch.waiter
        if waiter is None or watch.ended:
            return
        try:
            news = waiter.read_news()
        except Exception as error:
            self._dropped(watch, registered, error)
            return
        if news:
            self.on_news(watch.profile_id)

    def _renew_due(self, registered: dict[int, _Watch]) -> None:
        """Hand the connections due for renewal to free renewal threads, off the selector meanwhile.

        Only as many as there are free threads: a connection waiting for a busy one (servers slow
        to answer) stays on the selector, its news read, and is handed over on a later pass.
        """
        now = time.monotonic()
        for fileno, watch in list(registered.items()):
            if watch.waiter is None or now - watch.since < self.renew_every:
                continue
            with self.lock:
                if self.renewing >= RENEWERS:
                    return
                self.renewing += 1
            self._unregister(fileno, registered)
            watch.renewing = True
            try:
                self.renewers.submit(self._renew, watch)
            except RuntimeError:  # shutting down
                watch.renewing = False
                with self.lock:
                    self.renewing -= 1

    def _renew(self, watch: _Watch) -> None:
        """End and restart one IDLE (a renewal thread); the selector takes the connection back after."""
        waiter = watch.waiter
        try:
            if waiter is None:
                raise ProtocolError("the connection was closed meanwhile", "connection")
            news = waiter.renew()
        except Exception as error:
            with self.lock:
                watch.renewing = False
                self.renewing -= 1
            self._dropped(watch, {}, error)
            return
        with self.lock:
            watch.since = time.monotonic()
            self.renewals += 1
            self.renewing -= 1
            watch.renewing = False
            ended = watch.ended
        if ended or self.stopping.is_set():
            self._close(watch)  # unwatched meanwhile
            return
        self._wake()  # the selector registers it again
        if news:
            self.on_news(watch.profile_id)

    def _dropped(self, watch: _Watch, registered: dict[int, _Watch], error: BaseException) -> None:
        for fileno, other in list(registered.items()):
            if other is watch:
                self._unregister(fileno, registered)
        self._close(watch)
        if watch.ended or self.stopping.is_set():
            return
        if time.monotonic() - watch.since > STEADY:
            watch.failures = 0  # it had been up a while: not a server dropping us at once, again and again
        watch.failures += 1
        delay = min(FIRST_RECONNECT * 2 ** (watch.failures - 1), MAX_RECONNECT)
        log.warning(
            "profile %s: the IDLE connection dropped (%s); reconnecting in %.0f s",
            watch.name,
            error,
            delay,
        )
        self._connect_later(watch, delay)
