"""A mail's identity for de-duplication: a digest of its body and headers, trace headers left out.

A Message-ID is only a hint (web forms and cron mailers reuse one, anyone can forge one); two mails
are the same mail only when their Message-IDs and these digests agree.
"""

from __future__ import annotations

import hashlib
import re

#: Headers added on the way to the mailbox, left out of the digest: the same mail delivered twice to
#: one mailbox (To and Cc both reaching it, or fetched from two folders) differs only in these and
#: is still one mail. Every other header counts, so a difference an author made (a form's field
#: in a header of its own) is never taken for a duplicate: with a list of headers that count
#: instead, two different mails could be one and one of them lost; this way the worst case is a
#: mail stored twice when a relay adds a trace header not named here.
TRACE_HEADERS = frozenset(
    {
        b"received",
        b"x-received",
        b"return-path",
        b"delivered-to",
        b"x-original-to",
        b"envelope-to",
        b"x-envelope-to",
        b"x-envelope-from",
        b"authentication-results",
        b"received-spf",
        b"x-delivered-to",
        b"status",
        b"x-status",
        b"x-uid",
        b"x-keywords",
        b"lines",
        b"content-length",
    }
)
#: Prefixes of trace headers: sealing (ARC), spam and virus scanners, and mail stores.
TRACE_PREFIXES = (
    b"arc-",
    b"x-spam",
    b"x-virus",
    b"x-ms-exchange-",
    b"x-forefront-",
    b"x-microsoft-antispam",
)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLDING = (b" ", b"\t")


def content_digest(raw: bytes) -> str:
    """The SHA-256 (hex) of the mail's headers but trace headers, in order, and its body.

    Header values are unfolded with runs of white space made one space (a relay may refold a long
    header); the body is taken byte for byte, only trailing line ends dropped (a store may add
    one). Any other difference (one word of a form's body) makes another mail. Linear in the
    size of the mail; the body is hashed without a copy.
    """
    view = memoryview(raw)
    end = _HEADER_END.search(raw)
    header, body = (view[: end.start()], view[end.end() :]) if end else (view, view[len(view) :])
    digest = hashlib.sha256()
    for name, value in _headers(bytes(header)):
        if name not in TRACE_HEADERS and not name.startswith(TRACE_PREFIXES):
            digest.update(name + b":" + b" ".join(value.split()) + b"\n")
    digest.update(b"\n")
    stop = len(body)
    while stop and body[stop - 1] in b"\r\n":
        stop -= 1
    digest.update(body[:stop])
    return digest.hexdigest()


def _headers(header: bytes) -> list[tuple[bytes, bytes]]:
    """The ``(lower-case name, unfolded value)`` pairs of a header section, in order.

    A line that is no header field counts whole, as a field without a name.
    """
    fields: list[tuple[bytes, list[bytes]]] = []
    for line in header.split(b"\n"):
        if line.startswith(_FOLDING) and fields:
            fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(b":")
        fields.append((name.strip().lower(), [value]) if colon else (b"", [line]))
    return [(name, b" ".join(parts)) for name, parts in fields]
