"""The switch between a worker's two forms: the engine (``scheduler.Worker``) and the standby (``standby.py``).

An idle ``postroom run`` held about 72 MiB, 45 of them the database stack (SQLAlchemy's Core and
ORM, one connection) that only storing mail and sending replies need (issue 18, ``bench.idle_floors``).
So after ``--standby-after`` seconds in which the engine stored, sent and failed nothing, it
re-executes its own process (``os.execv``: same pid, same worker id, the same leases) as the
standby, a program of the standard library, the bare database driver, the password cipher and the
protocol plugins that say they wait without the database stack (``WAITS_IN_STANDBY``). The standby
claims due profiles, lists their mailboxes, waits on IDLE connections and asks the outbox whether a
reply is due; an empty cycle it records itself, and anything else (a new mail, a failure, a due
reply, a changed configuration) makes it re-execute the process as the engine, which does it.

A process image replaced, not a child started: the operator's service manager, the SIGKILL tests
and the benches keep seeing one process, and memory taken by a burst of mail is given back when the
burst is over. What passes from one form to the next is the :class:`Handover`: JSON in an
anonymous in-memory file (``memfd_create``) whose descriptor the new image inherits, reads and
closes at once, its number in an environment variable. Not the JSON itself in the environment:
it holds the database URL, password included, which ``/proc/PID/environ`` would show for the
life of the process. The leases are not given back
in between: the profiles a form holds to watch (IMAP IDLE) are adopted by the next one, and an
SQLite worker's lock file stays locked (its descriptor is inherited).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

if TYPE_CHECKING:
    from postroom.core.plugin_host import PluginHost

#: The environment variable naming the handover's descriptor.
HANDOVER_ENV = "POSTROOM_HANDOVER_FD"
#: The engine stands by after this many seconds with nothing done (``postroom run --standby-after``).
DEFAULT_STANDBY_AFTER = 300


@dataclass
class Handover:
    """What one form of a worker tells the next when it re-executes the process as the other."""

    worker: str
    database_url: str
    #: The engine's command line after the interpreter: ``-m postroom ... run ...`` as first started.
    argv: list[str]
    lease: float
    threads: int
    tick: float
    idle_renew: float
    standby_after: float
    verbose: bool
    log_format: str
    #: The configuration generation the engine ran with; another one wakes the engine.
    generation: int = -1
    #: Protocol name -> "module:class" of the registered plugins the standby may use.
    protocols: dict[str, str] = field(default_factory=dict)
    #: The SQLite worker lock's descriptor, inherited across the exec (None on PostgreSQL).
    lock_fd: int | None = None
    #: Profiles whose server offers no IDLE (polled only).
    unsupported: list[int] = field(default_factory=list)
    #: The plugins switched off when the engine stood by; another set wakes it (it reloads them).
    disabled: list[str] = field(default_factory=list)
    #: The plugins the engine warned about (name, error, remedy): the next engine does not again.
    plugin_failures: list[tuple[str, str, str]] = field(default_factory=list)
    #: Standby to engine: held profiles to fetch at once (news), and why the engine was woken.
    news: list[int] = field(default_factory=list)
    reason: str = ""

    def to_descriptor(self) -> int:
        """The handover in an in-memory file, its descriptor inheritable across ``exec``."""
        descriptor = os.memfd_create("postroom-handover", 0)  # no MFD_CLOEXEC: the next image reads it
        os.write(descriptor, json.dumps(asdict(self)).encode())
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.set_inheritable(descriptor, True)
        return descriptor

    @classmethod
    def take(cls) -> Handover | None:
        """The handover this process image was started with (read, closed, removed from the environment)."""
        number = os.environ.pop(HANDOVER_ENV, None)
        if not number:
            return None
        descriptor = int(number)
        try:
            with os.fdopen(descriptor, "rb") as handle:
                document = json.loads(handle.read())
        except OSError as error:
            raise RuntimeError(f"the worker's handover (descriptor {descriptor}) cannot be read: {error}") from error
        return cls(**cast("dict[str, Any]", document))


def standby_protocols(plugins: PluginHost) -> dict[str, str]:
    """The fetch protocols registered now whose plugin waits without the database stack, as "module:class"."""
    return {
        name: f"{plugin.__module__}:{plugin.__qualname__}"
        for name, plugin in plugins.protocols.items()
        if plugin.CAN_FETCH and plugin.WAITS_IN_STANDBY
    }


class StandbyClock:
    """When the engine last did something; it stands by once ``after`` seconds have passed since."""

    def __init__(self, after: float | None) -> None:
        #: None: never (``--standby-after 0``, or an admin endpoint, whose counters live in the engine).
        self.after = after or None
        self.last = time.monotonic()

    def busy(self) -> None:
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.after is not None and time.monotonic() - self.last >= self.after


def exec_standby(handover: Handover) -> NoReturn:
    """Replace this process with the standby (``python -m postroom.core.worker.standby``)."""
    _exec(handover, ["-m", "postroom.core.worker.standby"])


def exec_engine(handover: Handover) -> NoReturn:
    """Replace this process with the engine: ``postroom run`` as it was first started."""
    _exec(handover, handover.argv)


def _exec(handover: Handover, arguments: list[str]) -> NoReturn:
    if handover.lock_fd is not None:
        os.set_inheritable(handover.lock_fd, True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.environ[HANDOVER_ENV] = str(handover.to_descriptor())
    os.execv(sys.executable, [sys.executable, *arguments])


def engine_argv() -> list[str]:
    """How this ``postroom run`` was started, as arguments of ``python -m postroom``."""
    return ["-m", "postroom", *sys.argv[1:]]
