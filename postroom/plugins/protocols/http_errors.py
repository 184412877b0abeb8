"""What went wrong under an HTTP library's wrappers: the socket or TLS error, for the HTTPS protocols.

EWS (exchangelib over requests) and Graph (requests) both wrap a refused connection, a failed DNS
lookup or a certificate that does not verify in several layers of their own exceptions; the
sentence an operator reads must name the low-level cause, so both ask here.
"""

from __future__ import annotations

import socket
import ssl

import requests

#: The causes to report, most specific first.
_LOW_LEVEL = (
    ssl.SSLCertVerificationError,
    ssl.SSLError,
    socket.gaierror,
    ConnectionRefusedError,
    TimeoutError,
    OSError,
)


def network_cause(error: BaseException) -> OSError | None:
    """The socket or TLS error under the library's wrappers, most specific first; None if the network did not fail."""
    seen: set[int] = set()
    found: list[OSError] = []
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and not isinstance(current, requests.RequestException):
            found.append(current)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    for kind in _LOW_LEVEL:
        for candidate in found:
            if isinstance(candidate, kind):
                return candidate
    return None
