"""The "default retry" policy: try again at once, up to ``maxRetryCount`` retries (unidentified errors)."""

from __future__ import annotations

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import DEFAULT_RETRY, RetryContext, RetryDecision, RetryPolicy


class DefaultRetry(RetryPolicy):
    """Retries immediately: an error nobody recognised may well be gone on the next attempt."""

    NAME = DEFAULT_RETRY
    LABEL = "Retry at once, up to maxRetryCount times"

    def decide(self, context: RetryContext) -> RetryDecision:
        if context.retries_done >= context.settings.max_retry_count:
            return RetryDecision(None)
        return RetryDecision(context.now)


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [DefaultRetry]
