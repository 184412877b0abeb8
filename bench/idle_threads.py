"""What waiting on N sockets costs in resident memory: N threads each blocked in a read, or one selector.

    python -m bench.idle_threads [--connections 100 500]

The measurement behind the IDLE watcher's design (core/worker/idle.py): socket pairs stand in for
the IDLE connections (the connections themselves cost the same either way), and the figure is
the process's VmRSS after the waiters started, minus before.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def one(design: str, count: int) -> None:
    """In a fresh process: start ``count`` waiters of ``design`` and print the memory they took."""
    pairs = [socket.socketpair() for _ in range(count)]
    before = rss_kib()
    if design == "threads":
        for reader, _writer in pairs:
            threading.Thread(target=reader.recv, args=(1,), daemon=True).start()
    else:
        selector = selectors.DefaultSelector()
        for reader, _writer in pairs:
            selector.register(reader, selectors.EVENT_READ)
        threading.Thread(target=selector.select, daemon=True).start()
    time.sleep(1)
    grown = rss_kib() - before
    print(f"{design:8} {count:5}  RSS +{grown:6} KiB  {grown / count:5.1f} KiB per connection")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--one", nargs=2, metavar=("DESIGN", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(args.one[0], int(args.one[1]))
        return 0
    for design in ("threads", "selector"):
        for count in args.connections:
            subprocess.run([sys.executable, "-m", "bench.idle_threads", "--one", design, str(count)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
