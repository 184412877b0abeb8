"""The "no retry" policy: the message fails at once (addressing, protocol and content errors)."""

from __future__ import annotations

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import NO_RETRY, RetryContext, RetryDecision, RetryPolicy


class NoRetry(RetryPolicy):
    """Never retries: sending the same mail again would be refused for the same reason."""

    NAME = NO_RETRY
    LABEL = "Never retry"

    def decide(self, context: RetryContext) -> RetryDecision:
        return RetryDecision(None)


@hookimpl
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    return [NoRetry]
