"""What the fuzz tests ask of an error message: one sentence, as a person reads it on stderr."""

from __future__ import annotations


def is_one_sentence(message: str) -> bool:
    """One line, no traceback, starting with a capital (or a quoted value) and ending with a full stop."""
    text = message.strip()
    return (
        bool(text)
        and "\n" not in text
        and "\r" not in text
        and "Traceback" not in text
        and text.endswith((".", ".)", "?"))
    )
