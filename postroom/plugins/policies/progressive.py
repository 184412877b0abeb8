"""The "progressive retry" policy: the k-th retry after k x ``progressiveRetryInterval`` (300, 600, 900 s)."""

from __future__ import annotations

from datetime import timedelta

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import PROGRESSIVE_RETRY, RetryContext, RetryDecision, RetryPolicy


class ProgressiveRetry(RetryPolicy):
    """Waits longer before each retry, giving a full mailbox or a busy server more time each round."""

    NAME = PROGRESSIVE_RETRY
    LABEL = "Retry after k x progressiveRetryInterval, up to maxRetryCount times"

    def decide(self, context: RetryContext) -> RetryDecision:
        if context.retries_done >= context.settings.max_retry_count:
            return RetryDecision(None)
        retry_number = context.retries_done + 1
        return RetryDecision(
            context.now + timedelta(seconds=retry_number * context.settings.progressive_retry_interval)
        )


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [ProgressiveRetry]
