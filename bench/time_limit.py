"""What the parse time limit costs per mail: ``parse_mail`` with and without its guard.

    python -m bench.time_limit [--mails N] [--rounds R]

Generates N ordinary mails (default 3000; ``bench.inbound_mails``, fixed seed), then in R
interleaved rounds (default 5) parses all of them bare and inside ``time_limit(10)``, as the
inbound pipeline does, and prints the best time per mail of each and their difference; last, the
cost of entering and leaving an empty guard, alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.inbound_mails import generate_mails
from postroom.core.mail.parse import parse_mail
from postroom.core.mail.time_limit import time_limit


def _bare(mails: list[bytes]) -> None:
    for raw in mails:
        parse_mail(raw)


def _guarded(mails: list[bytes]) -> None:
    for raw in mails:
        with time_limit(10):
            parse_mail(raw)


def _seconds(work: Callable[[list[bytes]], None], mails: list[bytes]) -> float:
    start = time.perf_counter()
    work(mails)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    mails = generate_mails(args.mails, seed=11)
    _bare(mails[:50])  # imports and caches warm
    bare, guarded = [], []
    for _ in range(args.rounds):
        bare.append(_seconds(_bare, mails))
        guarded.append(_seconds(_guarded, mails))
    per_bare = min(bare) / len(mails) * 1e6
    per_guarded = min(guarded) / len(mails) * 1e6
    print(f"{len(mails)} mails, best of {args.rounds} interleaved rounds")
    print(f"parse_mail bare:        {per_bare:8.1f} µs per mail")
    print(f"parse_mail with limit:  {per_guarded:8.1f} µs per mail")
    print(f"difference:             {per_guarded - per_bare:8.1f} µs ({(per_guarded / per_bare - 1) * 100:+.2f} %)")
    turns = 100_000
    start = time.perf_counter()
    for _ in range(turns):
        with time_limit(10):
            pass
    print(f"an empty guard alone:   {(time.perf_counter() - start) / turns * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
