"""The "no retry" policy: the message fails at once (addressing, protocol and content errors)."""

from __future__ import annotations

from datetime import datetime

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import NO_RETRY, RetryDecision, RetryPolicy, RetrySettings


class NoRetry(RetryPolicy):
    """Never retries: sending the same mail again would be refused for the same reason."""

    NAME = NO_RETRY
    LABEL = "Never retry"

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        return RetryDecision(None)


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [NoRetry]
