"""The "rate limit retry" policy: wait ``rateLimitRetryTime`` between retries (network routing errors)."""

from __future__ import annotations

from datetime import datetime, timedelta

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import RATE_LIMIT_RETRY, RetryDecision, RetryPolicy, RetrySettings


class RateLimitRetry(RetryPolicy):
    """Waits the same long time before every retry, as a provider throttling the sender asks for."""

    NAME = RATE_LIMIT_RETRY
    LABEL = "Retry after rateLimitRetryTime, up to maxRetryCount times"

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        if retries_done >= settings.max_retry_count:
            return RetryDecision(None)
        return RetryDecision(now + timedelta(seconds=settings.rate_limit_retry_time))


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [RateLimitRetry]
