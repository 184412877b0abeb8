"""Subject lines: the normalised form resolvers compare, case tokens, and the subject of a reply.

A reply postroom sends reads ``Re: [prefix] original subject [#PR-42]``: one reply marker first (where
mail clients put theirs, so a customer's answer becomes ``Re: Re: [prefix] ...`` and still normalises
the same), then the profile's subject prefix, the subject without earlier markers, and the case token
last, out of the reader's way. The case token format is ``[#{PREFIX}-{ticket id}]``, PREFIX "PR" by default.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import overload

DEFAULT_CASE_PREFIX = "PR"

#: A case token anywhere in a subject: group 1 is its prefix, group 2 the ticket id.
CASE_TOKEN_RE = re.compile(r"\[#([^\[\]\s#]+?)-(\d+)\]")

# Reply and forward markers in the languages mail clients localise them to. Single letters are taken
# only where a client really writes them (Italian "R:"). The full-width colon (U+FF1A) of Chinese and
# Japanese clients counts as a colon.
_REPLY_WORDS = (
    "re",
    "aw",
    "sv",
    "vs",
    "antw",
    "antwort",
    "rif",
    "r",
    "réf",
    "odp",
    "ynt",
    "απ",
    "σχετ",
    "回复",
    "答复",
    "回覆",
    "res",
    "vá",
    "ats",
)
_FORWARD_WORDS = (
    "fwd",
    "fw",
    "wg",
    "doorst",
    "tr",
    "pd",
    "rv",
    "enc",
    "vl",
    "vb",
    "tov",
    "ilt",
    "πρθ",
    "转发",
    "轉寄",
    "轉發",
    "fs",
)
_WORDS = "|".join(sorted((re.escape(w) for w in (*_REPLY_WORDS, *_FORWARD_WORDS)), key=len, reverse=True))
# "Re:", "RE :", "Re[2]:", "Re(2):", "Re^2:", "回复:" ... at the start, after blanks.
_MARKER_RE = re.compile(rf"\s*({_WORDS})\.?\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:\uff1a]", re.IGNORECASE)
# Old Mozilla forwards: "[Fwd: subject]".
_BRACKET_FORWARD_RE = re.compile(r"\s*\[(?:fwd?|fw)\s*[:\uff1a]\s*(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
_FORWARD_SET = frozenset(_FORWARD_WORDS)


@overload
def format_case_token(prefix: str | None, ticket_id: int) -> str: ...
@overload
def format_case_token(prefix: int) -> str: ...
def format_case_token(prefix: str | int | None, ticket_id: int | None = None) -> str:
    """The case token for a ticket: ``format_case_token("PR", 42)`` is ``[#PR-42]``.

    An empty or None prefix means "PR", and ``format_case_token(42)`` is short for ``(None, 42)``.
    """
    if isinstance(prefix, int):
        number, label = prefix, DEFAULT_CASE_PREFIX
    elif ticket_id is None:
        raise TypeError("format_case_token needs a ticket id.")
    else:
        number, label = ticket_id, prefix or DEFAULT_CASE_PREFIX
    token = f"[#{label}-{int(number)}]"
    if number < 0 or CASE_TOKEN_RE.fullmatch(token) is None:
        raise ValueError(f"The case token prefix {label!r} may not contain blanks, brackets or '#'.")
    return token


def find_case_tokens(subject: str) -> list[str]:
    """Every case token in a subject, as written (``["[#PR-42]"]``), in order."""
    return [match.group(0) for match in CASE_TOKEN_RE.finditer(subject)]


def find_case_ticket_ids(subject: str, prefix: str | None = None) -> list[int]:
    """Ticket ids of the case tokens with this prefix (any case; None means "PR"), in order."""
    wanted = (prefix or DEFAULT_CASE_PREFIX).casefold()
    return [int(m.group(2)) for m in CASE_TOKEN_RE.finditer(subject) if m.group(1).casefold() == wanted]


@lru_cache(maxsize=64)
def _prefix_re(prefix: str) -> re.Pattern[str] | None:
    """A pattern for the profile prefix at the start: any case, any blanks between its words."""
    words = prefix.split()
    if not words:
        return None
    # "ACME" must not eat the start of "ACMEcorp": a prefix ending in a letter ends at a word boundary.
    boundary = r"(?!\w)" if words[-1][-1].isalnum() else ""
    return re.compile(r"\s*" + r"\s+".join(map(re.escape, words)) + boundary, re.IGNORECASE)


def _peel(text: str, prefix: str | None) -> tuple[str, list[str]]:
    """Remove leading reply/forward markers and copies of the prefix; return the rest and the markers."""
    prefix_re = _prefix_re(prefix) if prefix else None
    markers: list[str] = []
    while True:
        bracketed = _BRACKET_FORWARD_RE.match(text)
        if bracketed:
            markers.append("fwd")
            text = bracketed.group(1)
            continue
        marker = _MARKER_RE.match(text)
        if marker:
            markers.append(marker.group(1).casefold())
            text = text[marker.end() :]
            continue
        own = prefix_re.match(text) if prefix_re else None
        if own:
            text = text[own.end() :]
            continue
        return text, markers


def normalise_subject(subject: str, prefix: str | None = None) -> str:
    """The subject resolvers compare: markers, profile prefix and case tokens gone, blanks and case folded."""
    text = unicodedata.normalize("NFKC", CASE_TOKEN_RE.sub(" ", subject))
    text, _ = _peel(text, unicodedata.normalize("NFKC", prefix) if prefix else None)
    return " ".join(text.split()).casefold()


def add_subject_prefix(subject: str, prefix: str | None) -> str:
    """The subject with the profile prefix in front once, after one "Re: " (or "Fwd: ") if it had any."""
    text, markers = _peel(subject, prefix)
    text = " ".join(text.split())
    parts = []
    if markers:
        parts.append("Fwd:" if markers[0] in _FORWARD_SET else "Re:")
    if prefix and prefix.strip():
        parts.append(" ".join(prefix.split()))
    parts.append(text)
    return " ".join(p for p in parts if p)


def reply_subject(subject: str, prefix: str | None = None, case_token: str | int | None = None) -> str:
    """The subject of an agent's reply: ``Re: [prefix] subject [#PR-42]``, never doubling any part.

    ``case_token`` is the ticket's token, or a ticket id to make one with the default prefix.
    """
    if isinstance(case_token, int):
        case_token = format_case_token(case_token)
    text, _ = _peel(CASE_TOKEN_RE.sub(" ", subject), prefix)
    parts = ["Re:"]
    if prefix and prefix.strip():
        parts.append(" ".join(prefix.split()))
    parts.append(" ".join(text.split()))
    if case_token:
        parts.append(case_token)
    return " ".join(p for p in parts if p)
