"""Free text as a folded header value that decodes to exactly that text (RFC 2047 encoded words).

Why not the stdlib: ``policy.SMTP`` folds a long subject by ending one encoded word and starting
the next at a blank of the text, and a decoder drops the blank between two encoded words (RFC 2047
§6.2), so ``"… 000 \\x80 \\x80"`` arrived as ``"… 000\\x80 \\x80"`` (found by the long fuzz run).
Here a blank that separates two encoded words always travels inside one of them, and a blank
beside a plain word stays a plain blank, which every decoder keeps.
"""

from __future__ import annotations

import base64

#: Longest header line (RFC 5322 recommends 78); the first line also holds ``Subject: ``.
MAX_LINE = 78
#: Bytes of text in one encoded word: ``=?utf-8?b?`` + 52 base64 characters + ``?=`` is 64 long,
#: within the 75 RFC 2047 allows, and fits the first line after a header name of up to 12 characters.
WORD_BYTES = 39
#: A plain word longer than this is encoded, so that it can be split across lines.
MAX_PLAIN_WORD = 60


def _plain(word: str) -> bool:
    """Whether a word may travel as it is: printable ASCII that no decoder could take for an encoded word."""
    return (
        0 < len(word) <= MAX_PLAIN_WORD
        and word.isascii()
        and word.isprintable()
        and "=?" not in word
        and "?=" not in word
    )


def _encoded(text: str) -> list[str]:
    """``text`` as UTF-8 encoded words of at most :data:`WORD_BYTES` bytes, never splitting a character."""
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8", "replace")  # a lone surrogate has no UTF-8: it becomes "?"
        if chunk and len(chunk) + len(data) > WORD_BYTES:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = b""
        chunk += data
    if chunk:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _tokens(text: str) -> list[str]:
    """Plain words and encoded words, in order; a run of words that need encoding is encoded as one
    text with its blanks inside, so the blanks between encoded words are never lost."""
    tokens: list[str] = []
    run: list[str] = []
    for word in text.split(" "):
        if _plain(word):
            if run:
                tokens.extend(_encoded(" ".join(run)))
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens.extend(_encoded(" ".join(run)))
    return tokens


def fold_text(name: str, text: str) -> str:
    """The value of header ``name`` carrying ``text`` (blanks single, no line breaks: ``header_text``).

    Lines are joined by ``\\r\\n `` and none is longer than :data:`MAX_LINE` with the name in front.
    Decoding the value (unfolding, then RFC 2047) gives ``text`` back exactly.
    """
    lines: list[str] = []
    line = ""
    room = MAX_LINE - len(name) - 2  # "Name: "
    for token in _tokens(text):
        if line and len(line) + 1 + len(token) > room:
            lines.append(line)
            line, room = "", MAX_LINE - 1  # a continuation line starts with its blank
        line = f"{line} {token}" if line else token
    lines.append(line)
    return "\r\n ".join(lines)
