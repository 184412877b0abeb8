"""Small validators shared by the services; each raises a one-sentence :class:`UserError`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from postroom.core.contract.errors import UserError
from postroom.core.mail.addresses import address_problem

log = logging.getLogger(__name__)

#: A number an operator sets: a count, or seconds that may have a fraction (a time limit).
_Number = TypeVar("_Number", int, float)

def check_address(value: str, field: str) -> str:
    """Return the address stripped, or refuse it naming the field.

    What an address is, is :func:`postroom.core.mail.addresses.address_problem`'s to say: the
    addresses an operator types are held to the same rule as those a reply is sent to.
    """
    address = value.strip()
    problem = address_problem(address)
    if problem is not None:
        raise UserError(f"The {field} {value!r} is not an email address: {problem}.")
    return address


def check_port(value: int, field: str) -> int:
    return Range(field, PORT.low, PORT.high).check(value)


def check_single_line(value: str, field: str) -> str:
    """Refuse CR/LF in a value that ends up in a mail header (header injection)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise UserError(f"The {field} must be a single line.")
    return value


def check_positive(value: int, field: str, minimum: int = 1) -> int:
    if value < minimum:
        raise UserError(f"The {field} must be at least {minimum}, not {value}.")
    return value


def _shown(number: float) -> str:
    """A bound or value as an operator typed it: 65535, 0.1, 3600 (not 3600.0)."""
    return f"{number:g}" if isinstance(number, float) else str(number)


@dataclass(frozen=True)
class Range(Generic[_Number]):
    """The range of a number an operator can set: refused outside it, clamped when read back from SQL."""

    field: str
    low: _Number
    high: _Number

    def check(self, value: _Number) -> _Number:
        if not self.low <= value <= self.high:  # NaN too: it compares false
            raise UserError(
                f"The {self.field} must be between {_shown(self.low)} and {_shown(self.high)},"
                f" not {_shown(value)}."
            )
        return value

    def clamp(self, value: _Number, owner: str) -> _Number:
        """``value`` pulled into the range, with a log line: a row typed in SQL must not stop a cycle."""
        clamped = min(max(value, self.low), self.high)
        if clamped != value:
            log.warning(
                "%s: the %s %s is out of range (%s-%s); using %s",
                owner,
                self.field,
                value,
                self.low,
                self.high,
                clamped,
            )
        return clamped


PORT = Range("port", 1, 65535)
#: Seconds between two fetches of a profile: at least a second, at most a week.
FETCH_INTERVAL = Range("fetch interval (seconds)", 1, 7 * 86400)
#: Days of mail a fetch lists (0 means all); a century is more than any mailbox holds.
FETCH_LAST_DAYS = Range("number of days to fetch", 0, 36500)
#: Mails or replies one batch takes (a fetch's download, a send run's claim).
BATCH_SIZE = Range("batch size", 1, 10000)
#: ``postroom run``: profiles fetched at the same time, and the seconds a fetch lease lasts.
THREADS = Range("number of fetch threads", 1, 64)
LEASE_SECONDS = Range("lease (seconds)", 5, 3600)
#: A routing rule's place in its profile's order (lower first): room for any scheme of numbering,
#: well inside the 32-bit column.
RULE_PRIORITY = Range("rule priority", 0, 1_000_000)
#: Seconds one mail may take to parse before it is quarantined (``core/mail/time_limit.py``): real
#: mail takes milliseconds; an hour is more than any mail deserves.
PARSE_TIME_LIMIT = Range("parse time limit (seconds)", 0.1, 3600.0)
DEFAULT_PARSE_TIME_LIMIT = 10.0
