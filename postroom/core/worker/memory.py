"""What a long-running worker does once its start-up is over, so that it holds less while it waits.

Start-up leaves garbage behind: import-time objects no module keeps, and the C heap's free space
between them. A worker mostly waits (issue 18), so it gives back what it can, once:

- ``gc.collect()`` frees the cycles start-up left; ``gc.freeze()`` then moves every surviving
  object (modules, classes, mappers: all of them live as long as the process) out of the
  collector's generations, so later collections walk only what the fetch cycles make.
- glibc's ``malloc_trim(0)`` returns the free pages inside the C heap to the kernel. Python's own
  allocator gives back only whole 1 MiB arenas, and glibc only the top of its heap, so free pages
  between live blocks otherwise stay resident for the life of the process. Measured on an idle
  worker: about 1 MiB less RSS (bench/idle.py). Elsewhere than glibc (musl, macOS) there is
  nothing to call and this step is skipped.

And before its threads start, :func:`limit_malloc_arenas`: glibc gives each thread that calls
malloc an arena of its own (up to eight per core), and each keeps its free memory for itself.
Most of a worker's allocations happen under the GIL, so its threads gain little from separate
arenas (the C libraries that release it, OpenSSL and the database drivers, share two); two arenas
measured 1 to 1.7 MiB less RSS on an idle worker with 1 and 100 profiles (bench/idle.py,
``MALLOC_ARENA_MAX=2`` against the default). ``$MALLOC_ARENA_MAX``, when set, is left to rule.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from collections.abc import Callable
from typing import cast

#: glibc's mallopt parameter for the number of malloc arenas (malloc.h).
_M_ARENA_MAX = -8
#: Arenas the worker's threads share (glibc's default is eight per core).
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """At most ``arenas`` glibc malloc arenas for the process's threads (see the module); call before
    the threads start. Nothing happens elsewhere than glibc, or when ``$MALLOC_ARENA_MAX`` is set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    mallopt = _libc_function("mallopt", ctypes.c_int, ctypes.c_int)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, arenas)


def release_startup_garbage() -> None:
    """Collect, freeze what survived, and give the C heap's free pages back (see the module)."""
    gc.collect()
    gc.freeze()
    _malloc_trim()


def release_after(seconds: float, stopping: threading.Event) -> threading.Thread:
    """:func:`release_startup_garbage` once, ``seconds`` from now (after the first fetch cycles,
    which import the protocol's client and may decrypt a password), unless ``stopping`` is set first."""

    def wait_then_release() -> None:
        if not stopping.wait(seconds):
            release_startup_garbage()

    thread = threading.Thread(target=wait_then_release, name="postroom-settle", daemon=True)
    thread.start()
    return thread


def _malloc_trim() -> None:
    trim = _libc_function("malloc_trim", ctypes.c_size_t)
    if trim is not None:
        trim(0)


def _libc_function(name: str, *argtypes: type[ctypes.c_int | ctypes.c_size_t]) -> Callable[..., int] | None:
    """glibc's ``int name(argtypes)`` from the symbols the process has loaded; None elsewhere (musl, macOS)."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return cast("Callable[..., int]", function)
