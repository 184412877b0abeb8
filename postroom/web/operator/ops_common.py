"""What the operator's pages beyond the media profiles share: the contact centre they show, and how a
refusal is shown (the core's sentence, status 400, or 404 for a missing id)."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template

from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID

#: The console works on the default contact centre (the CLI's unless ``--contact-center`` is given).
CENTER = DEFAULT_CONTACT_CENTER_ID


def refused(error: UserError, template: str, **context: Any) -> tuple[str, int]:
    """The page again with the core's sentence above it, and 400; 404 when what the URL or form names
    does not exist (the core's ``NotFoundError``: no such rule, quarantined mail, profile)."""
    flash(str(error), "error")
    return render_template(template, **context), 404 if isinstance(error, NotFoundError) else 400


def parse_int(value: str | None, field: str) -> int:
    """A whole number typed in a form, or the sentence click gives for one that is not."""
    try:
        return int((value or "").strip())
    except ValueError:
        raise UserError(f"The {field} must be a whole number, not {value!r}.") from None

