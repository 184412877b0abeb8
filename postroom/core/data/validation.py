"""Small validators shared by the services; each raises a one-sentence :class:`UserError`."""

from __future__ import annotations

import re

from postroom.core.contract.errors import UserError

# A pragmatic addr-spec check: one @, a non-empty local part, a dotted or bracketed domain, no
# whitespace or header-breaking characters. Full RFC 5322 grammar would accept what no MTA sends.
_ADDRESS_RE = re.compile(
    r"^(?:\"[^\"\r\n]*\"|[^@\s<>(),;:\"\[\]\\]+)"  # a quoted or a plain local part
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9-]+$"
)


def check_address(value: str, field: str) -> str:
    """Return the address stripped, or refuse it naming the field."""
    address = value.strip()
    if not _ADDRESS_RE.match(address):
        raise UserError(f"The {field} {value!r} is not an email address.")
    return address


def check_port(value: int, field: str) -> int:
    if not 1 <= value <= 65535:
        raise UserError(f"The {field} must be between 1 and 65535, not {value}.")
    return value


def check_single_line(value: str, field: str) -> str:
    """Refuse CR/LF in a value that ends up in a mail header (header injection)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise UserError(f"The {field} must be a single line.")
    return value


def check_positive(value: int, field: str, minimum: int = 1) -> int:
    if value < minimum:
        raise UserError(f"The {field} must be at least {minimum}, not {value}.")
    return value
