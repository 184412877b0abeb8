"""The "rate limit retry" policy: wait ``rateLimitRetryTime`` between retries (network routing errors)."""

from __future__ import annotations

from datetime import timedelta

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import RATE_LIMIT_RETRY, RetryContext, RetryDecision, RetryPolicy


class RateLimitRetry(RetryPolicy):
    """Waits the same long time before every retry, as a provider throttling the sender asks for."""

    NAME = RATE_LIMIT_RETRY
    LABEL = "Retry after rateLimitRetryTime, up to maxRetryCount times"

    def decide(self, context: RetryContext) -> RetryDecision:
        if context.retries_done >= context.settings.max_retry_count:
            return RetryDecision(None)
        return RetryDecision(context.now + timedelta(seconds=context.settings.rate_limit_retry_time))


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [RateLimitRetry]
