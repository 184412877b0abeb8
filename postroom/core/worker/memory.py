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
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading

log = logging.getLogger(__name__)


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
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the symbols already loaded: libc's, if glibc
    except (OSError, AttributeError):  # not glibc
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
