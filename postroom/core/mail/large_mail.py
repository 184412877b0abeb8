"""Parsing very large mails from a skeleton: big base64 attachment bodies are cut out before parsing.

The stdlib parser holds a body as one string per line and then as one joined string: at its peak
about seven times a mail's size, 190 MB for a 25 MB scan. An attachment needs only its name, type
and size, so in a mail over :data:`LARGE_MAIL` bytes each base64 body of a non-text part that is
longer than :data:`LARGE_BODY` is replaced by one marker line, and its decoded size is counted in
the raw bytes without decoding. The stored raw mail is never changed.
"""

from __future__ import annotations

import base64
import re

#: Mails smaller than this are parsed whole.
LARGE_MAIL = 2 * 1024 * 1024
#: Base64 bodies at least this long (in encoded bytes) are cut out.
LARGE_BODY = 256 * 1024

# Where a part's body may begin (after a blank line), what its first line must look like to be
# base64, and the first byte that base64 text cannot hold. Searching for that byte, rather than
# matching the run line by line with a repeated group, keeps the regex engine's memory flat.
_BLANK_LINE = re.compile(rb"\n\r?\n")
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/]{16,998}={0,2}[ \t]*\r?\n")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=\r\n \t]")
_CONTENT_TYPE = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?([a-z0-9!#$&^_.+-]+)/", re.I | re.M)
#: How far back the headers of the part holding a run are looked for.
_HEADER_WINDOW = 16 * 1024
_MARKER_PREFIX = b"postroom:elided-body:"


def _marker(number: int) -> bytes:
    """The bytes a cut-out body decodes to in the skeleton: unique within the mail."""
    return _MARKER_PREFIX + b"%08d" % number


def _part_maintype(raw: bytes, body_start: int) -> bytes | None:
    """The declared main type (``b"application"``...) of the part whose body starts at ``body_start``."""
    low = max(0, body_start - _HEADER_WINDOW)
    boundary = raw.rfind(b"\n--", low, body_start)
    header_start = boundary + 1 if boundary >= 0 else low
    # The last Content-Type line of the block is the part's own.
    types = [match.group(1).lower() for match in _CONTENT_TYPE.finditer(raw, header_start, body_start)]
    return types[-1] if types else None


def _decoded_size(raw: bytes, start: int, end: int) -> int:
    """What ``raw[start:end]`` decodes to from base64, counted without decoding or copying it."""
    spaces = sum(raw.count(c, start, end) for c in (b"\r", b"\n", b" ", b"\t"))
    characters = end - start - spaces
    padding = raw.count(b"=", max(start, end - 8), end)
    return characters * 3 // 4 - padding


def cut_large_bodies(raw: bytes) -> tuple[bytes, dict[bytes, int]]:
    """The mail with big base64 bodies of non-text parts replaced by markers, and marker -> decoded size.

    Small mails come back unchanged (and the same object), with an empty mapping. A body is cut
    only where it begins right after its part's header block and that block names a type that is
    not text (a body without Content-Type is text/plain and is kept whole).
    """
    if len(raw) < LARGE_MAIL:
        return raw, {}
    pieces: list[bytes] = []
    sizes: dict[bytes, int] = {}
    position = 0
    for blank in _BLANK_LINE.finditer(raw):
        start = blank.end()
        if start < position or not _BASE64_LINE.match(raw, start):
            continue
        other = _NOT_BASE64.search(raw, start)
        # The run ends where the line holding the first other byte begins (a boundary line, mostly).
        end = raw.rfind(b"\n", start, other.start()) + 1 if other else len(raw)
        if end - start < LARGE_BODY or _part_maintype(raw, start) in (
            None,
            b"text",
            b"message",
            b"multipart",
        ):
            continue
        marker = _marker(len(sizes))
        sizes[marker] = _decoded_size(raw, start, end)
        newline = b"\r\n" if raw[end - 2 : end] == b"\r\n" else b"\n"
        pieces += [raw[position:start], base64.b64encode(marker), newline]
        position = end
    if not sizes:
        return raw, {}
    pieces.append(raw[position:])
    return b"".join(pieces), sizes
