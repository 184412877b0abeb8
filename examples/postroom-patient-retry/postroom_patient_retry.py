"""A postroom retry policy, ``patient retry``, and a send-error classifier for one provider's replies.

The policy waits hours, not minutes (1 h, 4 h, 12 h, then 24 h between tries) and is told the
failure: a full mailbox (``4.2.2``) gets twice the profile's ``maxRetryCount`` retries, because
people do empty their mailboxes; a permanent reply (``5.x.x``) is never retried, whatever its
category. Installing it changes nothing: an operator selects it for the categories (and profiles)
it should decide, e.g. ``postroom retry set-policy "mailbox error" "patient retry" --profile support``.

The classifier files a provider's over-quota replies that carry no enhanced status code
(``452 Quota exceeded``) as mailbox errors; anything else it leaves to the builtin classifier.
"""

from __future__ import annotations

from datetime import timedelta

from postroom import ErrorCategory, RetryContext, RetryDecision, RetryPolicy, SendFailure, hookimpl
from postroom.core.data.models import MediaProfile

#: Hours to wait before the first, second, third ... retry (the last repeats).
WAITS = (1, 4, 12, 24)
OVER_QUOTA = ("quota exceeded", "over quota", "mailbox full")


class PatientRetry(RetryPolicy):
    NAME = "patient retry"
    LABEL = "Retry after 1 h, 4 h, 12 h, then daily; twice as often for a full mailbox"

    def decide(self, context: RetryContext) -> RetryDecision:
        code = context.enhanced_code or ""
        if code.startswith("5."):
            return RetryDecision(None)
        allowed = context.settings.max_retry_count
        if context.category == ErrorCategory.MAILBOX and code == "4.2.2":
            allowed *= 2
        if context.retries_done >= allowed:
            return RetryDecision(None)
        hours = WAITS[min(context.retries_done, len(WAITS) - 1)]
        return RetryDecision(context.now + timedelta(hours=hours))


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [PatientRetry]


@hookimpl
def postroom_classify_send_error(error: SendFailure, profile: MediaProfile) -> ErrorCategory | None:
    if error.kind == "protocol" and any(phrase in error.text.lower() for phrase in OVER_QUOTA):
        return ErrorCategory.MAILBOX
    return None
