"""The "progressive retry" policy: the k-th retry after k x ``progressiveRetryInterval`` (300, 600, 900 s)."""

from __future__ import annotations

from datetime import datetime, timedelta

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import PROGRESSIVE_RETRY, RetryDecision, RetryPolicy, RetrySettings


class ProgressiveRetry(RetryPolicy):
    """Waits longer before each retry, giving a full mailbox or a busy server more time each round."""

    NAME = PROGRESSIVE_RETRY
    LABEL = "Retry after k x progressiveRetryInterval, up to maxRetryCount times"

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        if retries_done >= settings.max_retry_count:
            return RetryDecision(None)
        retry_number = retries_done + 1
        return RetryDecision(now + timedelta(seconds=retry_number * settings.progressive_retry_interval))


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [ProgressiveRetry]
