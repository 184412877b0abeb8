"""Text safe for a terminal: control and invisible format characters shown as readable escapes, and
table cells cut without splitting one and measured in terminal columns (a CJK character takes two).
Every human-readable line the CLI prints goes through here.
"""

from __future__ import annotations

import unicodedata

#: Format characters (category Cf) left as they are: the joiners shape Arabic, Indic scripts and
#: emoji sequences, and neither moves, hides or overwrites other text.
_KEPT_FORMAT = frozenset("\u200c\u200d")


def _escape(char: str) -> str | None:
    """The readable escape of ``char``, or None when a terminal may show it as it is.

    Made visible, and why:
    - C0 controls (U+0000-U+001F), DEL and C1 controls (U+0080-U+009F): ESC and CSI start the
      sequences that clear the screen, move the cursor, set the title or make OSC 8 links; BEL
      rings; CR and BS overwrite what was printed. A table needs none of them (tab and newline are
      kept only in whole sentences, see :func:`visible`).
    - Format characters (Cf), but the joiners: bidi overrides and isolates (U+202A-U+202E,
      U+2066-U+2069) reorder what follows, so ``invoice\\u202efdp.exe`` reads as ``invoiceexe.pdf``;
      zero-width spaces, the BOM, soft hyphens and tag characters hide text inside names.
    - Line and paragraph separators (U+2028, U+2029): some terminals break the line on them.
    - Lone surrogates: bytes that were not UTF-8 (argv, file names), shown as the byte they were.
    """
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    category = unicodedata.category(char)
    if (category == "Cf" and char not in _KEPT_FORMAT) or category in ("Zl", "Zp", "Cs"):
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return None


def _pieces(text: str, keep: str) -> list[str]:
    """``text`` as printable pieces: each character, or its escape (never half of one)."""
    pieces = []
    for char in text:
        escaped = None if char in keep else _escape(char)
        pieces.append(char if escaped is None else escaped)
    return pieces


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control and invisible format character as a readable escape such as
    ``\\x1b`` or ``\\u202e``; the characters in ``keep`` (e.g. newline and tab for whole sentences)
    are left as they are."""
    return "".join(_pieces(text, keep))


def columns(text: str) -> int:
    """The terminal columns ``text`` takes: two for an East Asian wide or fullwidth character (CJK,
    most emoji), none for a combining mark or a joiner, one for the rest.

    Why not wcwidth: it is not a dependency, and the stdlib's Unicode tables (East Asian Width,
    categories) give the same answer for what a table cell holds once :func:`visible` has escaped
    the controls.
    """
    return sum(_columns(char) for char in text) if not text.isascii() else len(text)


def _columns(char: str) -> int:
    if char in _KEPT_FORMAT or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def pad(text: str, width: int) -> str:
    """``text`` followed by blanks up to ``width`` terminal columns (``str.ljust`` counts characters)."""
    return text + " " * max(0, width - columns(text))


def one_line(text: str, width: int | None = None) -> str:
    """``text`` on one line (runs of whitespace as one space), made visible and, if wider than
    ``width`` terminal columns, cut to it with an ellipsis; the cut falls between escapes, never
    inside one, and never inside a wide character."""
    pieces = _pieces(" ".join(text.split()), keep="")
    if width is None or sum(map(columns, pieces)) <= width:
        return "".join(pieces)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        size = columns(piece)
        if used + size > width - 1:
            break
        kept.append(piece)
        used += size
    return "".join(kept) + "…"


def json_visible(document: str) -> str:
    """A JSON document with the characters :func:`visible` escapes written as ``\\uXXXX`` escapes:
    the same JSON value, safe on a terminal. ``json.dumps`` escapes C0 controls itself, but with
    ``ensure_ascii=False`` not DEL, C1 (U+009B is a CSI), bidi overrides or invisible characters."""
    out = []
    for char in document:
        # Below U+0020 only the document's own newlines are left: json.dumps escaped the rest.
        if ord(char) < 0x20 or _escape(char) is None:
            out.append(char)
        elif ord(char) > 0xFFFF:  # JSON writes an astral character as its UTF-16 surrogate pair
            high, low = divmod(ord(char) - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)
