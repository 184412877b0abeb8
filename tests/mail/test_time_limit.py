"""The time limit on parsing (core/mail/time_limit.py): it stops pure-Python work, and only inside its guard.

No test here asserts a duration: each asserts where the exception is raised, never when.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Any

import pytest

from postroom.core.mail import time_limit as time_limit_module
from postroom.core.mail.time_limit import TimeLimitExceeded, time_limit

#: Work that would run far longer than any limit below, if nothing stopped it.
FOREVER = 600.0


def _busy(seconds: float) -> int:
    """Pure-Python work for about ``seconds`` (an interruptible loop, as the stdlib's email parser is)."""
    end = time.monotonic() + seconds
    turns = 0
    while time.monotonic() < end:
        turns += 1
    return turns


def _spin(turns: int) -> int:
    total = 0
    for turn in range(turns):
        total += turn
    return total


@pytest.mark.timeout(60)
def test_work_past_its_limit_is_stopped_inside_the_with_statement() -> None:
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        _busy(FOREVER)


def test_work_within_its_limit_returns_its_result() -> None:
    with time_limit(60):
        result = _spin(1000)
    assert result == sum(range(1000))


@pytest.mark.timeout(60)
def test_the_limit_is_not_swallowed_by_the_work_it_stops() -> None:
    """The parser salvages broken parts with ``except Exception``, and the stdlib has a bare ``except``."""
    swallowed = 0
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        try:  # work that catches everything and carries on, as a careless salvage clause might
            _busy(FOREVER)
        except BaseException:
            swallowed += 1
    assert swallowed == 1  # swallowed inside, and raised again by the guard as it was left


class _SlowFinaliser:
    """An object whose ``__del__`` works a while: an exception landing there is dropped by Python."""

    def __del__(self) -> None:
        _busy(1.0)


@pytest.mark.timeout(60)
def test_a_limit_dropped_in_a_finaliser_is_fired_again_while_the_work_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen once in the suite: the exception landed in a weak-reference callback the garbage collector
    ran, Python printed and dropped it, and the parse went on to its end."""
    dropped: list[str] = []

    def hook(unraisable: Any) -> None:
        dropped.append(type(unraisable.exc_value).__name__)
        time_limit_module._unraisable(unraisable)

    monkeypatch.setattr(sys, "unraisablehook", hook)  # pytest puts its own in while a test runs
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        finalised = _SlowFinaliser()
        del finalised  # __del__ runs here, past the limit: the watchdog's exception is dropped there
        _busy(FOREVER)  # and without a second one this would run for ever
    assert dropped and set(dropped) == {"TimeLimitExceeded"}


@pytest.mark.timeout(120)
def test_the_exception_is_never_raised_outside_a_guard_in_any_of_several_threads() -> None:
    """Limits about as long as the work: many guards are left at the moment the watchdog fires.

    Each thread spins outside its guards after each one; an exception arriving late would land there.
    """
    escaped: list[str] = []
    outcomes = {"finished": 0, "stopped": 0}
    lock = threading.Lock()

    def work(seed: int) -> None:
        draw = random.Random(seed)
        for _ in range(300):
            try:
                try:
                    # Mostly work about as long as the limit (the race); one guard in ten certainly
                    # longer, so that some are stopped however fast this machine spins.
                    turns = draw.randint(100, 10_000) if draw.random() < 0.9 else draw.randint(100_000, 200_000)
                    with time_limit(0.0005 + draw.random() * 0.001):
                        _spin(turns)
                    outcome = "finished"
                except TimeLimitExceeded:
                    outcome = "stopped"
                _spin(2000)
            except TimeLimitExceeded:
                with lock:
                    escaped.append(threading.current_thread().name)
                continue
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=work, args=(seed,), name=f"guarded-{seed}") for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert escaped == []
    assert outcomes["finished"] + outcomes["stopped"] == 1200
    assert outcomes["stopped"] > 0, "no guard was stopped: the test proved nothing about the race"


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan")])
def test_a_limit_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        time_limit(seconds)
