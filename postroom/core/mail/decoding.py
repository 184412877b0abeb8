"""Text out of real-world mail bytes: charsets with fallbacks, encoded words, raw 8-bit headers, addresses.

Labels lie (GB2312 that is GBK, iso-8859-1 that is cp1252, Shift_JIS inside ISO-2022-JP words) and
headers arrive as raw 8-bit bytes; each decoder tries what such mail usually means and never raises.
"""

from __future__ import annotations

import binascii
import codecs
import email.utils
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from postroom.core.mail.addresses import MAX_ADDRESS, address_problem

LINEBREAK = re.compile(r"\r\n|\r|\n")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_ENCODED_RUN = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=(?:\s*=\?[^?\s]+\?[bBqQ]\?[^?]*\?=)*")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
_URLSAFE = str.maketrans("-_", "+/")
_PLACEHOLDER = re.compile(r"\x01(\d+)\x02")
_COMMENT = re.compile(r"\s*\([^()]*\)")
#: An address as plain text, for a header the stdlib cannot read at all.
_BARE_ADDRESS = re.compile(r"[^\s<>,;:\"()]+@[^\s<>,;:\"()]+")
# Bytes that look like GB2312/EUC text: every 8-bit byte pairs with another in the A1-FE row.
_EUC_LIKE = re.compile(rb"(?:[\x00-\x7f]|[\xa1-\xfe][\xa1-\xfe])*")


class Chain(NamedTuple):
    """How to decode bytes labelled with one charset: strict tries in order, then a last resort."""

    candidates: tuple[str, ...]
    last_resort: str
    multibyte: bool
    ascii_safe: bool


_CJK = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "gb18030": ("gb18030",),
    "hz": ("hz", "gb18030"),
    "big5": ("big5hkscs", "cp950"),
    "big5hkscs": ("big5hkscs",),
    "cp950": ("cp950", "big5hkscs"),
    # Shift_JIS and EUC-JP bytes inside words labelled ISO-2022-JP are common in Japanese mail.
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext", "cp932", "euc_jp"),
    "shift_jis": ("cp932",),
    "cp932": ("cp932",),
    "euc_jp": ("euc_jp", "cp932"),
    "euc_kr": ("cp949",),
    "cp949": ("cp949",),
    "iso2022_kr": ("iso2022_kr", "cp949"),
}
_UNKNOWN_LABELS = {
    "windows-874": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "x-gbk": "gbk",
    "csgb2312": "gb2312",
    "x-mac-roman": "mac-roman",
    "ucs-2": "utf-16",
}
_SINGLE_BYTE = ("iso8859", "cp125", "ascii", "latin", "koi8", "mac-", "cp8", "cp4", "tis")
# Python codecs that no mail means by a charset label (and that decode junk in surprising ways).
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "charmap"}
)
_SURROGATE_PRONE = ("utf-7", "utf-16", "utf-32", "hz")
_RAW_SINGLE = Chain(("utf-8", "cp1252"), "latin-1", False, True)


@lru_cache(maxsize=256)
def label_chain(label: str | None) -> Chain:
    """The decoding chain for a charset label, trusting the label but not blindly."""
    if not label:
        return _RAW_SINGLE
    label = label.strip().strip("\"'").lower().split("*", 1)[0]
    if not label.isascii():
        return _RAW_SINGLE
    try:
        info = codecs.lookup(_UNKNOWN_LABELS.get(label, label))
    except (LookupError, ValueError):
        return _RAW_SINGLE
    name = info.name
    if name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return _RAW_SINGLE
    if name in _CJK:
        tries = _CJK[name]
        return Chain((*tries, "utf-8"), tries[0], True, not name.startswith(("iso2022", "hz")))
    if name == "utf-8":
        return Chain(("utf-8",), "cp1252", False, True)
    if name.startswith(_SINGLE_BYTE):
        # Valid UTF-8 with 8-bit bytes is almost never Latin text by chance, and iso-8859-1/us-ascii
        # labels usually mean cp1252 (curly quotes, euro sign).
        own = "cp1252" if name in ("iso8859-1", "ascii") else name
        return Chain(("utf-8", own), "latin-1", False, True)
    return Chain((name, "utf-8"), "latin-1", False, not name.startswith(_SURROGATE_PRONE))


@lru_cache(maxsize=256)
def raw_chain(hints: tuple[str, ...], euc_like: bool) -> Chain:
    """The chain for 8-bit bytes with no label of their own: UTF-8, the mail's charsets, then cp1252."""
    multi: list[str] = ["utf-8"]
    single: list[str] = []
    for hint in hints:
        chain = label_chain(hint)
        (multi if chain.multibyte else single).extend(c for c in chain.candidates if c != "utf-8")
    if euc_like and len(multi) == 1:
        multi.append("gb18030")
    return Chain(tuple(dict.fromkeys([*multi, *single, "cp1252"])), "latin-1", False, True)


def scrub(text: str) -> str:
    """Remove what no database column takes: NUL characters and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def decode_bytes(data: bytes, chain: Chain) -> str:
    """Decode with the first charset of the chain that fits strictly, else salvage (UTF-8 or last resort)."""
    if chain.ascii_safe and data.isascii():
        return data.decode("ascii")
    for charset in chain.candidates:
        try:
            text = data.decode(charset)
        except (UnicodeError, LookupError, ValueError):
            continue
        return scrub(text) if charset.startswith(_SURROGATE_PRONE) else text
    if "utf-8" in chain.candidates:
        # Truncated or slightly damaged UTF-8 is still UTF-8: replace the few bad bytes.
        text = data.decode("utf-8", "replace")
        bad = text.count("\ufffd")
        if bad * 10 <= len(text) - len(text.encode("ascii", "ignore")):
            return text
    if chain.last_resort == "cp1252":
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return data.decode(chain.last_resort, "replace")


def _decode_raw_text(text: str, hints: tuple[str, ...]) -> str:
    """Turn a header string holding surrogate-escaped 8-bit bytes into real text."""
    if text.isascii():
        return text
    data = text.encode("utf-8", "surrogateescape")
    return decode_bytes(data, raw_chain(hints, _looks_euc(data)))


def _looks_euc(data: bytes) -> bool:
    """Whether 8-bit header bytes look like GB2312/EUC text rather than Latin text.

    At least three byte pairs and no lone 8-bit byte: Latin text has lone accented letters, and at
    most the odd pair ("Grüße").
    """
    return len(data) - len(data.decode("latin-1").encode("ascii", "ignore")) >= 6 and bool(
        _EUC_LIKE.fullmatch(data)
    )


def _word_bytes(encoding: str, payload: str) -> bytes:
    """The bytes of one encoded word; broken padding and stray characters are tolerated."""
    if encoding in "qQ":
        return binascii.a2b_qp(payload.encode("utf-8", "surrogateescape"), header=True)
    core = _NOT_BASE64.sub("", payload.translate(_URLSAFE))
    if len(core) % 4 == 1:
        core = core[:-1]
    return binascii.a2b_base64(core + "=" * (-len(core) % 4))


def _decode_run(run: str, hints: tuple[str, ...]) -> str:
    """Decode adjacent encoded words; words in one charset are joined first (split multibyte characters)."""
    pieces: list[tuple[str, list[bytes]]] = []
    for match in _ENCODED_WORD.finditer(run):
        label = match.group(1).split("*", 1)[0].lower()
        data = _word_bytes(match.group(2), match.group(3))
        if pieces and pieces[-1][0] == label:
            pieces[-1][1].append(data)
        else:
            pieces.append((label, [data]))
    out = []
    for label, chunks in pieces:
        chain = label_chain(label)
        out.append(
            decode_bytes(b"".join(chunks), chain if chain is not _RAW_SINGLE else raw_chain(hints, False))
        )
    return "".join(out)


def _protect(value: str, hints: tuple[str, ...]) -> tuple[str, list[str]]:
    """Replace encoded-word runs by ASCII placeholders, so commas inside them cannot split addresses."""
    words: list[str] = []

    def hold(match: re.Match[str]) -> str:
        words.append(_decode_run(match.group(0), hints))
        return f"\x01{len(words) - 1}\x02"

    return (_ENCODED_RUN.sub(hold, value) if "=?" in value else value), words


def _restore(text: str, words: list[str]) -> str:
    if not words:
        return text
    return _PLACEHOLDER.sub(lambda m: words[int(m.group(1))] if int(m.group(1)) < len(words) else "", text)


def decode_header_value(value: str, hints: Iterable[str] = ()) -> str:
    """Decode a raw header value: unfold it, then decode encoded words and raw 8-bit bytes, with fallbacks."""
    hints = tuple(hints)
    protected, words = _protect(LINEBREAK.sub("", value), hints)
    return scrub(_restore(_decode_raw_text(protected, hints), words))


#: Address headers up to this long are remembered (:func:`parse_addresses`): a mailbox's mail comes
#: from the same customers and goes to the same support address again and again, and the stdlib
#: reads one address in about 15 µs. Longer values (long recipient lists) are read every time.
CACHED_ADDRESS_HEADER = 512


def parse_addresses(value: str, hints: tuple[str, ...]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header, tolerant of broken syntax.

    The same header value with the same charset hints always gives the same pairs, so short
    values are answered from a cache (a new list each time); see :func:`_read_addresses`.
    """
    if len(value) <= CACHED_ADDRESS_HEADER:
        return list(_cached_addresses(value, hints))
    return _read_addresses(value, hints)


@lru_cache(maxsize=1024)
def _cached_addresses(value: str, hints: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(_read_addresses(value, hints))


def _read_addresses(value: str, hints: tuple[str, ...]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header, tolerant of broken syntax.

    An address longer than :data:`MAX_ADDRESS` is no address: its pair keeps only the name. When the
    header holds something no address can be, each comma-separated entry is read on its own: junk
    beside an address (``<a@b.example> NOTIFY=SUCCESS``) is dropped, and an entry with an ``@`` but no
    usable address (``bad@@x``) is kept as written, so that a reply can name what it skipped.
    """
    protected, words = _protect(LINEBREAK.sub("", value), hints)
    found = _getaddresses(protected)
    pairs = _decoded(found, value, hints, words)
    # An empty pair is the stdlib's "could not read this" (since the fix of CVE-2023-27043, which
    # Debian's 3.11 has and others not yet, it gives nothing else for the whole header).
    if all(name or addr for name, addr in found) and not any(addr and address_problem(addr) for _, addr in pairs):
        return pairs
    pairs = []
    for entry in _entries(protected):
        found = _decoded(_getaddresses(entry), value, hints, words)
        usable = [(name, addr) for name, addr in found if addr and not address_problem(addr)]
        if usable:
            pairs.extend(usable)
        elif "@" in entry:
            bare = entry.rpartition("<")[2].partition(">")[0] if "<" in entry else entry
            pairs.extend(_decoded([("", bare.strip())], value, hints, words))
        else:
            pairs.extend(found)
    return pairs


def _getaddresses(text: str) -> list[tuple[str, str]]:
    """The stdlib's reading of an address header, or its bare addresses where the stdlib cannot read it."""
    try:
        return email.utils.getaddresses([text])
    except RecursionError:  # the stdlib reads each nested group ("g:g:g:...") one call deeper
        return [("", addr) for addr in _BARE_ADDRESS.findall(text)]


def _decoded(
    found: list[tuple[str, str]], value: str, hints: tuple[str, ...], words: list[str]
) -> list[tuple[str, str]]:
    pairs = []
    for raw_name, addr in found:
        # "Name (comment) <addr>": the comment is not part of the name. Looked for before the encoded
        # words are put back, so that parentheses inside one ("=?utf-8?q?=C2=A1=28=29?=") are kept.
        if "(" in raw_name and '"' not in value:
            raw_name = _COMMENT.sub("", raw_name).strip() or raw_name
        name = scrub(_restore(_decode_raw_text(raw_name, hints), words)).strip()
        addr = scrub(_restore(_decode_raw_text(addr, hints), words)).strip().lower()
        if len(addr) > MAX_ADDRESS:
            addr = ""
        if name or addr:
            pairs.append((name, addr))
    return pairs


def _entries(value: str) -> list[str]:
    """The entries of an address header split at its commas outside quotes, comments and angle brackets."""
    entries, start, depth, quoted, angled, index = [], 0, 0, False, False, 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            index += 1
        elif quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth and char in "<>":
            angled = char == "<"
        elif char == "," and not (depth or angled):
            entries.append(value[start:index])
            start = index + 1
        index += 1
    return [entry for entry in [*entries, value[start:]] if entry.strip()]
