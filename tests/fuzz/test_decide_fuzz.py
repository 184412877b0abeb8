"""The outbox's rules under generated attempts: invariants of :func:`decide` whatever the outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from postroom.core.contract.retry import CATEGORY_POLICIES, ErrorCategory, RetryPolicy, RetrySettings
from postroom.core.data.models import SendState
from postroom.core.outbound.decision import ClaimedReply, Failure, Outcome, decide
from postroom.plugins.policies.default import DefaultRetry
from postroom.plugins.policies.no_retry import NoRetry
from postroom.plugins.policies.progressive import ProgressiveRetry
from postroom.plugins.policies.rate_limit import RateLimitRetry
from tests.fuzz.strategies import addresses

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
INSTALLED: dict[str, RetryPolicy] = {p.NAME: p() for p in (DefaultRetry, RateLimitRetry, ProgressiveRetry, NoRetry)}

# Settings an operator can give, within the ranges the CLI checks (a day's worth of seconds many times over).
settings_strategy = st.one_of(
    st.none(),
    st.builds(
        RetrySettings,
        max_retry_count=st.integers(0, 50),
        rate_limit_retry_time=st.integers(0, 10**7),
        progressive_retry_interval=st.integers(0, 10**6),
    ),
)


@st.composite
def attempts(draw: st.DrawFn) -> tuple[ClaimedReply, Outcome]:
    """A claimed reply and what its attempt came to: each pending recipient accepted or refused, or the
    whole transaction failed."""
    pending = tuple(draw(st.lists(addresses, min_size=1, max_size=5, unique=True)))
    sent_at = draw(st.one_of(st.none(), st.just(NOW - timedelta(hours=1))))
    reply = ClaimedReply(id=1, profile_id=draw(st.one_of(st.none(), st.just(1))),
                         attempts=draw(st.integers(0, 60)), pending_recipients=pending, sent_at=sent_at)
    failure = st.builds(Failure, text=st.text(max_size=40), reply_code=st.one_of(st.none(), st.integers(200, 599)),
                        enhanced_code=st.none(), category=st.sampled_from(list(ErrorCategory)))
    if draw(st.booleans()):  # the whole transaction failed, for every pending recipient
        return reply, Outcome(failures=tuple(draw(st.lists(failure, min_size=1, max_size=2))))
    refused = [r for r in pending if draw(st.booleans())]
    delivered = tuple(r for r in pending if r not in refused)
    failures = tuple(replace(draw(failure), recipient=r) for r in refused)
    return reply, Outcome(delivered=delivered, failures=failures)


@given(attempts(), settings_strategy, st.sets(st.sampled_from(sorted(INSTALLED))))
def test_decide_keeps_its_invariants_for_any_attempt(
    attempt: tuple[ClaimedReply, Outcome], settings: RetrySettings | None, disabled: set[str]
) -> None:
    reply, outcome = attempt
    policies = {name: policy for name, policy in INSTALLED.items() if name not in disabled}
    t = decide(reply, outcome, settings, policy_names=CATEGORY_POLICIES, find_policy=policies.get, now=NOW)

    assert t.attempts == reply.attempts + 1
    assert set(t.pending_recipients) <= set(reply.pending_recipients)
    assert not set(t.pending_recipients) & set(outcome.delivered)
    assert t.next_attempt_at is None or t.next_attempt_at >= NOW
    assert (t.state == SendState.RETRY_SCHEDULED) == bool(t.pending_recipients)
    assert (t.state == SendState.RETRY_SCHEDULED) == (t.next_attempt_at is not None)
    if t.state == SendState.SENT:  # never "sent" without a recipient that accepted the mail
        assert outcome.delivered or reply.sent_at is not None
        assert t.sent_at is not None
    if t.state == SendState.FAILED:
        assert t.sent_at is None and not outcome.delivered and reply.sent_at is None
    assert t.partial == (t.state == SendState.RETRY_SCHEDULED and bool(outcome.delivered))
    assert len(t.failure_records) == len(outcome.failures)
    assert all(r.attempt == t.attempts and r.created_at == NOW for r in t.failure_records)
    assert t.counted == {"retry-scheduled": "retry_scheduled"}.get(t.state.value, t.state.value)
