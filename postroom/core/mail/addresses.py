"""Whether one bare address can be sent to (RFC 5321/5322 with RFC 6531's internationalised addresses),
and its parts: a quoted local part may hold a comma, an internationalised one travels as SMTPUTF8.
"""

from __future__ import annotations

import re

#: The longest address a mail server takes (RFC 5321, 4.5.3.1.3: a path of 256 octets with its brackets).
MAX_ADDRESS = 254
#: RFC 5321, 4.5.3.1.1 and 4.5.3.1.2: the longest local part and domain label, in octets.
MAX_LOCAL, MAX_LABEL = 64, 63
# atext (RFC 5322 3.2.3), plus any non-ASCII character (RFC 6532 3.2: UTF8-non-ascii).
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_address(address: str) -> tuple[str, str] | None:
    """``(local part as written, domain)``: the split at the one ``@`` outside a quoted local part, or None."""
    if address.startswith('"'):
        index, escaped = 1, False
        while index < len(address):
            char = address[index]
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                break
            index += 1
        else:
            return None
        local, rest = address[: index + 1], address[index + 1 :]
    else:
        local, at, domain = address.partition("@")
        rest = at + domain
    if not rest.startswith("@") or "@" in rest[1:]:
        return None
    return local, rest[1:]


def local_text(local: str) -> str:
    """The local part's text: a quoted one without its quotes and escapes (``"a,b"`` -> ``a,b``)."""
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def _domain_problem(domain: str) -> str | None:
    if not domain:
        return "it has no domain after the @"
    if domain.startswith("[") and domain.endswith("]"):
        return (
            None
            if domain[1:-1] and not re.search(r"[\[\]\\\s]", domain[1:-1])
            else "its domain is no address"
        )
    for label in domain.split("."):
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                return f"its domain label {label!r} is not a valid internationalised name"
        if not (0 < len(label) <= MAX_LABEL and _LABEL.fullmatch(label)):
            return f"its domain {domain!r} is not a valid domain name"
    return None


def address_problem(address: str) -> str | None:
    """Why ``address`` (bare, no display name) cannot be sent to, as a clause ("it has no domain after
    the @"), or None when it can."""
    if not address:
        return "it is empty"
    if _CONTROL.search(address):
        return "it contains a line break or another control character"
    if len(address) > MAX_ADDRESS:
        return f"it is longer than the {MAX_ADDRESS} characters a mail server takes"
    parts = split_address(address)
    if parts is None:
        return "it is not one local part, one @ and a domain" if "@" in address else "it has no @ and domain"
    local, domain = parts
    if local.startswith('"'):
        if len(local) < 2 or not local.endswith('"'):
            return "its quoted local part is not closed"
    elif not all(_ATOM.fullmatch(atom) for atom in local.split(".")):
        return "its local part is empty or holds characters only quotes allow"
    if len(local.encode("utf-8")) > MAX_LOCAL:
        return f"its local part is longer than {MAX_LOCAL} octets"
    return _domain_problem(domain)
