"""The four builtin retry policies: when the next attempt comes, with the seed's and customised settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom.core.contract.retry import RetryPolicy, RetrySettings
from postroom.plugins.policies import default, no_retry, progressive, rate_limit
from postroom.plugins.policies.default import DefaultRetry
from postroom.plugins.policies.no_retry import NoRetry
from postroom.plugins.policies.progressive import ProgressiveRetry
from postroom.plugins.policies.rate_limit import RateLimitRetry

NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
SEED = RetrySettings()
CUSTOM = RetrySettings.from_properties(
    {"maxretrycount": "5", "RateLimitRetryTime": "3600", "progressiveRetryInterval": 60}
)


def after(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_each_module_registers_its_policy_under_the_seeds_configuration_code() -> None:
    names = {
        module.__name__.rsplit(".", 1)[1]: [
            policy.NAME for policy in module.postroom_register_retry_policies()
        ]
        for module in (default, rate_limit, progressive, no_retry)
    }
    assert names == {
        "default": ["default retry"],
        "rate_limit": ["rate limit retry"],
        "progressive": ["progressive retry"],
        "no_retry": ["no retry"],
    }


@pytest.mark.parametrize(
    ("policy", "settings", "schedule"),
    [
        (DefaultRetry(), SEED, [NOW, NOW, NOW, None]),
        (RateLimitRetry(), SEED, [after(86400), after(86400), after(86400), None]),
        (ProgressiveRetry(), SEED, [after(300), after(600), after(900), None]),
        (NoRetry(), SEED, [None, None, None, None]),
        (DefaultRetry(), CUSTOM, [NOW] * 5 + [None]),
        (RateLimitRetry(), CUSTOM, [after(3600)] * 5 + [None]),
        (ProgressiveRetry(), CUSTOM, [after(60), after(120), after(180), after(240), after(300), None]),
        (NoRetry(), CUSTOM, [None] * 6),
    ],
)
def test_the_next_attempt_follows_the_policy_until_max_retry_count_retries_are_done(
    policy: RetryPolicy, settings: RetrySettings, schedule: list[datetime | None]
) -> None:
    decisions = [policy.next_attempt(done, NOW, settings).retry_at for done in range(len(schedule))]
    assert decisions == schedule


@pytest.mark.parametrize("policy", [DefaultRetry(), RateLimitRetry(), ProgressiveRetry(), NoRetry()])
def test_a_max_retry_count_of_zero_means_the_first_failure_is_final(policy: RetryPolicy) -> None:
    assert policy.next_attempt(0, NOW, RetrySettings(max_retry_count=0)).retry_at is None


def test_a_profile_with_the_seeds_defaults_tries_a_mail_at_most_four_times() -> None:
    attempts, retries_done = 1, 0
    while ProgressiveRetry().next_attempt(retries_done, NOW, SEED).retry_at is not None:
        attempts, retries_done = attempts + 1, retries_done + 1
    assert attempts == 4
