"""The outbox's rules as a table: every error category x retries done x policy, partial and mixed refusals.

:func:`decide` is pure, so these tests need no server and no database; the builtin policy plugins
are the real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom.core.contract.retry import CATEGORY_POLICIES, ErrorCategory, RetrySettings
from postroom.core.data.columns import width
from postroom.core.data.models import FailedMessageSendInfo, SendState, SMessageSendInfo
from postroom.core.outbound.decision import (
    ClaimedReply,
    Failure,
    Outcome,
    Transition,
    decide,
)
from postroom.plugins.policies.default import DefaultRetry
from postroom.plugins.policies.no_retry import NoRetry
from postroom.plugins.policies.progressive import ProgressiveRetry
from postroom.plugins.policies.rate_limit import RateLimitRetry

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
CARLA, OLA = "carla@example.org", "ola@example.org"
SEED = RetrySettings()
INSTALLED = {policy.NAME: policy() for policy in (DefaultRetry, RateLimitRetry, ProgressiveRetry, NoRetry)}
#: A policy name no installed, enabled plugin answers to.
MISSING = "retired retry"

#: Seconds from a failure to the next attempt with the seed's settings, by the retries done before
#: it: 0 to 3 (maxRetryCount), then one beyond. None: not retried.
SCHEDULES: dict[str, list[int | None]] = {
    "default retry": [0, 0, 0, None, None],
    "rate limit retry": [86400, 86400, 86400, None, None],
    "progressive retry": [300, 600, 900, None, None],
    "no retry": [None, None, None, None, None],
    MISSING: [None, None, None, None, None],
}
RETRIES_DONE = range(len(SCHEDULES[MISSING]))

#: The seed's policy of each category, written out so that a change to the map shows here.
SEED_POLICY = {
    ErrorCategory.UNIDENTIFIED: "default retry",
    ErrorCategory.ADDRESSING: "no retry",
    ErrorCategory.MAILBOX: "progressive retry",
    ErrorCategory.MAIL_SYSTEM: "progressive retry",
    ErrorCategory.NETWORK_ROUTING: "rate limit retry",
    ErrorCategory.DELIVERY_PROTOCOL: "no retry",
    ErrorCategory.MESSAGE_CONTENT: "no retry",
    ErrorCategory.SECURITY_POLICY: "progressive retry",
    ErrorCategory.NO_SUCH_PROVIDER: "no retry",
    ErrorCategory.CONNECTION: "progressive retry",
    ErrorCategory.UNKNOWN_HOST: "no retry",
    ErrorCategory.INTERNAL: "no retry",
}


def reply(
    attempts: int = 0, recipients: tuple[str, ...] = (CARLA, OLA), sent_at: datetime | None = None
) -> ClaimedReply:
    return ClaimedReply(id=7, profile_id=3, attempts=attempts, pending_recipients=recipients, sent_at=sent_at)


def failure(
    category: ErrorCategory,
    recipient: str | None = None,
    text: str = "4.0.0 Try again",
    code: int | None = 451,
) -> Failure:
    return Failure(text=text, reply_code=code, enhanced_code=None, category=category, recipient=recipient)


def run(
    claimed: ClaimedReply,
    outcome: Outcome,
    *,
    names: dict[ErrorCategory, str] | None = None,
    settings: RetrySettings | None = SEED,
) -> Transition:
    return decide(
        claimed,
        outcome,
        settings,
        policy_names=CATEGORY_POLICIES if names is None else names,
        find_policy=INSTALLED.get,
        now=NOW,
    )


def signal_names(transition: Transition) -> list[str]:
    return [signal.signal.name for signal in transition.signals]


def expected_after(policy: str, retries_done: int) -> tuple[SendState, datetime | None, tuple[str, ...]]:
    """The state, next attempt and pending recipients the schedule table gives a failure for all."""
    delay = SCHEDULES[policy][retries_done]
    if delay is None:
        return SendState.FAILED, None, ()
    return SendState.RETRY_SCHEDULED, NOW + timedelta(seconds=delay), (CARLA, OLA)


def test_the_table_names_every_category_and_the_seed_map_agrees() -> None:
    assert set(SEED_POLICY) == set(ErrorCategory)
    assert dict(CATEGORY_POLICIES) == SEED_POLICY


@pytest.mark.parametrize("category", list(ErrorCategory))
def test_each_category_is_retried_by_its_seed_policy_until_the_retries_are_used_up(
    category: ErrorCategory,
) -> None:
    policy = SEED_POLICY[category]
    decided = [run(reply(done), Outcome(failures=(failure(category),))) for done in RETRIES_DONE]
    assert [(t.state, t.next_attempt_at, t.pending_recipients) for t in decided] == [
        expected_after(policy, done) for done in RETRIES_DONE
    ]
    assert {(t.category, t.policy) for t in decided} == {(category.value, policy)}


@pytest.mark.parametrize("policy", list(SCHEDULES))
def test_the_policy_a_category_is_mapped_to_decides_its_retries_and_what_is_recorded_and_signalled(
    policy: str,
) -> None:
    names = dict.fromkeys(ErrorCategory, policy)
    cases = [(category, done) for category in ErrorCategory for done in RETRIES_DONE]
    decided = [
        run(reply(done), Outcome(failures=(failure(category),)), names=names) for category, done in cases
    ]
    expected = [(category, done, *expected_after(policy, done)) for category, done in cases]

    assert [(t.state, t.next_attempt_at, t.pending_recipients) for t in decided] == [
        (state, at, pending) for _, _, state, at, pending in expected
    ]
    assert [(t.attempts, t.sent_at, t.counted, t.partial) for t in decided] == [
        (done + 1, None, "retry_scheduled" if at else "failed", False) for _, done, _, at, _ in expected
    ]
    assert [
        [(r.attempt, r.recipient, r.category, r.policy, r.next_attempt_at) for r in t.failure_records]
        for t in decided
    ] == [[(done + 1, None, category.value, policy, at)] for category, done, _, at, _ in expected]
    assert [(signal_names(t), dict(t.signals[-1].kwargs)) for t in decided] == [
        (
            ["send-failed", "retry-scheduled"],
            {"send_info_id": 7, "next_attempt_at": at, "policy": policy, "attempt": done + 1},
        )
        if at
        else (
            ["send-failed", "send-abandoned"],
            {"send_info_id": 7, "category": category.value, "policy": policy, "attempts": done + 1},
        )
        for category, done, _, at, _ in expected
    ]


def test_a_reply_without_retry_settings_is_not_retried_whatever_its_policy() -> None:
    transition = run(reply(), Outcome(failures=(failure(ErrorCategory.MAILBOX),)), settings=None)
    assert (transition.state, transition.next_attempt_at, transition.policy) == (
        SendState.FAILED,
        None,
        "progressive retry",
    )


def test_a_send_every_recipient_accepts_is_sent_now_and_signalled_as_succeeded() -> None:
    transition = run(reply(attempts=2), Outcome(delivered=(CARLA, OLA)))
    assert (transition.state, transition.sent_at, transition.attempts, transition.pending_recipients) == (
        SendState.SENT,
        NOW,
        3,
        (),
    )
    assert (transition.last_error, transition.category, transition.policy) == (None, None, None)
    assert transition.failure_records == () and transition.counted == "sent"
    assert [(s.signal.name, dict(s.kwargs)) for s in transition.signals] == [
        ("send-succeeded", {"send_info_id": 7, "profile_id": 3, "attempts": 3})
    ]


def test_a_partial_refusal_keeps_the_mail_sent_to_the_rest_and_retries_only_the_refused_recipient() -> None:
    refused = failure(ErrorCategory.MAILBOX, OLA, "4.2.2 Mailbox full", 452)
    transition = run(reply(), Outcome(delivered=(CARLA,), failures=(refused,)))
    assert (transition.state, transition.pending_recipients, transition.next_attempt_at) == (
        SendState.RETRY_SCHEDULED,
        (OLA,),
        NOW + timedelta(seconds=300),
    )
    assert (transition.sent_at, transition.partial, transition.counted) == (NOW, True, "retry_scheduled")
    assert transition.last_error == f"{OLA}: 452 4.2.2 Mailbox full"
    assert transition.signals[0].kwargs["recipients"] == [OLA]


def test_a_partial_refusal_that_is_not_retried_leaves_the_reply_sent() -> None:
    refused = failure(ErrorCategory.ADDRESSING, OLA, "550 5.1.1 No such user", 550)
    transition = run(reply(), Outcome(delivered=(CARLA,), failures=(refused,)))
    assert (
        transition.state,
        transition.sent_at,
        transition.pending_recipients,
        transition.next_attempt_at,
    ) == (
        SendState.SENT,
        NOW,
        (),
        None,
    )
    assert (transition.counted, transition.partial) == ("sent", False)
    assert signal_names(transition) == ["send-failed", "send-abandoned"]
    assert transition.last_error == f"{OLA}: 550 5.1.1 No such user"  # the code is not repeated


def test_recipients_left_after_an_earlier_delivery_end_sent_when_given_up_and_sent_now_when_accepted() -> (
    None
):
    earlier = reply(attempts=3, recipients=(OLA,), sent_at=EARLIER)
    given_up = run(earlier, Outcome(failures=(failure(ErrorCategory.MAILBOX, OLA),)))
    assert (given_up.state, given_up.sent_at, given_up.counted) == (SendState.SENT, EARLIER, "sent")
    assert signal_names(given_up) == ["send-failed", "send-abandoned"]

    accepted = run(reply(attempts=1, recipients=(OLA,), sent_at=EARLIER), Outcome(delivered=(OLA,)))
    assert (accepted.state, accepted.sent_at, accepted.counted) == (SendState.SENT, NOW, "sent")


def test_recipients_refused_for_different_reasons_wait_for_the_latest_of_their_policies() -> None:
    outcome = Outcome(
        failures=(
            failure(ErrorCategory.MAILBOX, CARLA, "4.2.2 Mailbox full", 452),
            failure(ErrorCategory.NETWORK_ROUTING, OLA, "4.4.1 Throttled", 451),
            failure(ErrorCategory.ADDRESSING, "ben@gone.example", "5.1.1 No such user", 550),
        )
    )
    transition = run(reply(recipients=(CARLA, OLA, "ben@gone.example")), outcome)
    assert (transition.state, transition.pending_recipients, transition.next_attempt_at) == (
        SendState.RETRY_SCHEDULED,
        (CARLA, OLA),
        NOW + timedelta(days=1),
    )
    assert [(r.recipient, r.policy, r.next_attempt_at) for r in transition.failure_records] == [
        (CARLA, "progressive retry", NOW + timedelta(seconds=300)),
        (OLA, "rate limit retry", NOW + timedelta(days=1)),
        ("ben@gone.example", "no retry", None),
    ]
    # The row shows its first failure; the retry signal names that failure's policy.
    assert (transition.last_error, transition.category, transition.policy) == (
        f"{CARLA}: 452 4.2.2 Mailbox full",
        "mailbox error",
        "progressive retry",
    )
    assert signal_names(transition) == ["send-failed"] * 3 + ["retry-scheduled"]
    assert transition.signals[-1].kwargs["policy"] == "progressive retry"


def test_a_recipient_retried_both_alone_and_with_everyone_is_pending_once() -> None:
    outcome = Outcome(failures=(failure(ErrorCategory.MAILBOX, OLA), failure(ErrorCategory.UNIDENTIFIED)))
    assert run(reply(), outcome).pending_recipients == (OLA, CARLA)


def test_long_error_texts_are_cut_in_the_row_and_the_record_but_not_in_the_signal() -> None:
    limit = width(FailedMessageSendInfo.text)
    assert limit == width(SMessageSendInfo.last_error) == 4000
    text = "4.0.0 " + "x" * (2 * limit)
    transition = run(reply(), Outcome(failures=(failure(ErrorCategory.UNIDENTIFIED, text=text, code=None),)))
    assert transition.last_error == text[:limit]
    assert transition.failure_records[0].text == text[:limit]
    assert transition.signals[0].kwargs["text"] == text


def test_the_decision_leaves_its_inputs_alone_and_gives_the_same_answer_twice() -> None:
    claimed = reply(attempts=1)
    outcome = Outcome(delivered=(CARLA,), failures=(failure(ErrorCategory.MAILBOX, OLA),))
    first, second = run(claimed, outcome), run(claimed, outcome)
    assert first == second
    assert claimed == reply(attempts=1)
    assert outcome == Outcome(delivered=(CARLA,), failures=(failure(ErrorCategory.MAILBOX, OLA),))


@pytest.mark.parametrize(
    ("rate_limit_retry_time", "retry_after", "expected"),
    [(60, 120, 120), (600, 120, 600), (60, None, 60)],
)
def test_a_servers_retry_after_is_a_floor_under_the_policys_time_never_a_reason_to_retry(
    rate_limit_retry_time: int, retry_after: float | None, expected: int
) -> None:
    throttled = Failure(
        text="4.4.5 throttled",
        reply_code=429,
        enhanced_code="4.4.5",
        category=ErrorCategory.NETWORK_ROUTING,
        retry_after=retry_after,
    )
    settings = RetrySettings(rate_limit_retry_time=rate_limit_retry_time)
    transition = run(reply(), Outcome(failures=(throttled,)), settings=settings)
    assert (transition.policy, transition.next_attempt_at) == ("rate limit retry", NOW + timedelta(seconds=expected))
    assert transition.failure_records[0].next_attempt_at == NOW + timedelta(seconds=expected)

    given_up = run(reply(attempts=3), Outcome(failures=(throttled,)), settings=settings)
    assert (given_up.state, given_up.next_attempt_at) == (SendState.FAILED, None)  # the policy still decides
