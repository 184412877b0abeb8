"""The "default retry" policy: try again at once, up to ``maxRetryCount`` retries (unidentified errors)."""

from __future__ import annotations

from datetime import datetime

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import DEFAULT_RETRY, RetryDecision, RetryPolicy, RetrySettings


class DefaultRetry(RetryPolicy):
    """Retries immediately: an error nobody recognised may well be gone on the next attempt."""

    NAME = DEFAULT_RETRY
    LABEL = "Retry at once, up to maxRetryCount times"

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        if retries_done >= settings.max_retry_count:
            return RetryDecision(None)
        return RetryDecision(now)


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [DefaultRetry]
