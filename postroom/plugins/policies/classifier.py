"""The builtin send-error classifier: the RFC 3463 enhanced status code decides, else the kind of failure.

It runs last (``trylast``) and always answers, so a plugin that knows a provider's own replies
can decide first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import ErrorCategory
from postroom.core.outbound.classification import category_for_enhanced_status, parse_enhanced_status

if TYPE_CHECKING:
    from postroom.core.contract.protocols import SendFailure
    from postroom.core.data.models import MediaProfile

# Failures to reach or talk to the server, which carry no reply to read a code from.
KIND_CATEGORIES: dict[str, ErrorCategory] = {
    "unknown-host": ErrorCategory.UNKNOWN_HOST,
    "connection": ErrorCategory.CONNECTION,
    "tls": ErrorCategory.CONNECTION,
    "auth": ErrorCategory.SECURITY_POLICY,
    "internal": ErrorCategory.INTERNAL,
}


def classify_send_failure(error: SendFailure) -> ErrorCategory:
    """The category of a failed send: internal errors first, then the enhanced code, then the kind.

    An internal error's text is an exception message, so a code-like string in it means nothing.
    """
    if error.kind == "internal":
        return ErrorCategory.INTERNAL
    category = category_for_enhanced_status(parse_enhanced_status(error.text))
    if category is not None:
        return category
    return KIND_CATEGORIES.get(error.kind, ErrorCategory.UNIDENTIFIED)


@hookimpl(trylast=True)
def postroom_classify_send_error(error: SendFailure, profile: MediaProfile) -> ErrorCategory | None:
    return classify_send_failure(error)
