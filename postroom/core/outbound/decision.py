"""The outbox's rules as one pure function: what an attempt's outcome does to its reply.

:func:`decide` takes a claimed reply, who got this attempt's mail and which failures it met, and
returns the reply's next state, its failure records and the signals to send, as plain data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from blinker import NamedSignal

from postroom.core.contract import events
from postroom.core.contract.retry import CATEGORY_POLICIES, ErrorCategory, RetryPolicy, RetrySettings
from postroom.core.data.columns import fit
from postroom.core.data.models import FailedMessageSendInfo, SendState, SMessageSendInfo

#: The counters of a run's report an attempt can add to.
Counted = Literal["sent", "retry_scheduled", "failed"]


@dataclass(frozen=True)
class ClaimedReply:
    """A queued reply as its attempt found it."""

    id: int
    profile_id: int | None
    #: Attempts made before this one.
    attempts: int
    #: The recipients this attempt sent to.
    pending_recipients: tuple[str, ...]
    #: When a first recipient accepted the mail, in an earlier attempt; None if none did yet.
    sent_at: datetime | None


@dataclass(frozen=True)
class Failure:
    """One failed delivery of an attempt: to one recipient, or (``recipient`` None) to all pending ones."""

    text: str
    reply_code: int | None
    #: The RFC 3463 code in ``text``, if it has one.
    enhanced_code: str | None
    category: ErrorCategory
    recipient: str | None = None
    #: Seconds the server asked to wait (``Retry-After``): the retry is never scheduled sooner.
    retry_after: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the recipients that accepted the mail, and every failure."""

    delivered: tuple[str, ...] = ()
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True)
class FailureRecord:
    """One ``failed_message_send_info`` row: a failure, its policy and the retry that policy chose."""

    send_info_id: int
    attempt: int
    recipient: str | None
    reply_code: int | None
    enhanced_code: str | None
    text: str
    category: str
    policy: str
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Signal:
    """A signal to send, once the transition is committed, with its keyword arguments."""

    signal: NamedSignal
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Transition:
    """The reply's next state, and what the attempt leaves behind (failure records, signals, a count)."""

    state: SendState
    attempts: int
    next_attempt_at: datetime | None
    #: The recipients a retry sends to (none unless the state is ``retry-scheduled``).
    pending_recipients: tuple[str, ...]
    #: The attempt's time once nothing failed; the first delivery's while refused recipients wait
    #: or after they were given up; None while no recipient has accepted the mail.
    sent_at: datetime | None
    #: The first failure of the attempt (None when it met none), as the outbox list shows it.
    last_error: str | None
    category: str | None
    policy: str | None
    failure_records: tuple[FailureRecord, ...]
    signals: tuple[Signal, ...]
    #: Which counter of the run's report the attempt adds to.
    counted: Counted
    #: Some recipients accepted the mail while others wait for a retry.
    partial: bool


def decide(
    reply: ClaimedReply,
    outcome: Outcome,
    settings: RetrySettings | None,
    *,
    policy_names: Mapping[ErrorCategory, str],
    find_policy: Callable[[str], RetryPolicy | None],
    now: datetime,
) -> Transition:
    """Apply each failure's policy and move the reply to its next state.

    ``policy_names`` names the policy of every category; ``find_policy`` returns an installed,
    enabled policy by name, or None (the failure is then not retried). ``settings`` are the
    profile's retry variables; None (a reply without a profile) retries nothing.

    A retry is never scheduled before the wait a throttling server asked for (``retry_after``).
    A failure for all pending recipients keeps them all pending if its policy retries; a
    failure for one recipient keeps that one. Recipients refused for different reasons wait for
    the latest of their policies' times: no recipient is tried again sooner than its own policy
    allows. A reply that some recipient has accepted (now or before) ends ``sent``, else
    ``failed``, once nothing is left to retry.
    """
    attempts = reply.attempts + 1
    sent_at = reply.sent_at or (now if outcome.delivered else None)
    records: list[FailureRecord] = []
    signals: list[Signal] = []
    pending: list[str] = []
    for failure in outcome.failures:
        policy_name = policy_names[failure.category]
        retry_policy = find_policy(policy_name)
        retry_at = (
            retry_policy.next_attempt(attempts - 1, now, settings).retry_at
            if retry_policy is not None and settings is not None
            else None
        )
        if retry_at is not None and failure.retry_after:
            # The policy decides whether and when; a throttling server's own wait is a floor.
            retry_at = max(retry_at, now + timedelta(seconds=failure.retry_after))
        records.append(
            FailureRecord(
                send_info_id=reply.id,
                attempt=attempts,
                recipient=failure.recipient,
                reply_code=failure.reply_code,
                enhanced_code=failure.enhanced_code,
                text=fit(FailedMessageSendInfo.text, failure.text),
                category=failure.category.value,
                policy=policy_name,
                next_attempt_at=retry_at,
                created_at=now,
            )
        )
        signals.append(
            Signal(
                events.send_failed,
                {
                    "send_info_id": reply.id,
                    "category": failure.category.value,
                    "policy": policy_name,
                    "text": failure.text,
                    "recipients": [failure.recipient] if failure.recipient else [],
                },
            )
        )
        if retry_at is not None:
            pending += reply.pending_recipients if failure.recipient is None else [failure.recipient]

    last_error = category = policy = None
    if outcome.failures:
        first = outcome.failures[0]
        last_error = fit(SMessageSendInfo.last_error, describe(first))
        category, policy = first.category.value, records[0].policy
    retry_times = [r.next_attempt_at for r in records if r.next_attempt_at is not None]
    next_attempt_at = None
    if pending and retry_times:
        state, next_attempt_at = SendState.RETRY_SCHEDULED, max(retry_times)
    else:
        state = SendState.SENT if sent_at is not None else SendState.FAILED
        if not outcome.failures:
            sent_at = now

    counted: Counted
    if state == SendState.RETRY_SCHEDULED:
        counted = "retry_scheduled"
        kwargs: dict[str, Any] = {"next_attempt_at": next_attempt_at, "policy": policy, "attempt": attempts}
        signals.append(Signal(events.retry_scheduled, {"send_info_id": reply.id, **kwargs}))
    elif outcome.failures:
        # Nothing left to retry: a reply some recipient accepted (now or earlier) still counts as sent.
        counted = "sent" if state == SendState.SENT else "failed"
        kwargs = {"category": category, "policy": policy, "attempts": attempts}
        signals.append(Signal(events.send_abandoned, {"send_info_id": reply.id, **kwargs}))
    else:
        counted = "sent"
        kwargs = {"profile_id": reply.profile_id, "attempts": attempts}
        signals.append(Signal(events.send_succeeded, {"send_info_id": reply.id, **kwargs}))
    return Transition(
        state=state,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        pending_recipients=tuple(dict.fromkeys(pending)),
        sent_at=sent_at,
        last_error=last_error,
        category=category,
        policy=policy,
        failure_records=tuple(records),
        signals=tuple(signals),
        counted=counted,
        partial=state == SendState.RETRY_SCHEDULED and bool(outcome.delivered),
    )


def internal_transition(
    reply: ClaimedReply, outcome: Outcome, error: BaseException, now: datetime
) -> Transition:
    """The transition of a reply whose outcome could not be decided or recorded: never retried.

    The attempt's recipients that accepted the mail still count (the reply ends ``sent``, so it is
    not sent twice); the rest is one internal-error record naming the error and the first failure.
    """
    text = f"Internal error while recording the outcome: {type(error).__name__}: {error}"
    if outcome.failures:
        text += f" (the attempt: {describe(outcome.failures[0])})"
    failure = Failure(text=text, reply_code=None, enhanced_code=None, category=ErrorCategory.INTERNAL)
    return decide(
        reply,
        Outcome(delivered=outcome.delivered, failures=(failure,)),
        None,
        policy_names={ErrorCategory.INTERNAL: CATEGORY_POLICIES[ErrorCategory.INTERNAL]},
        find_policy=lambda _name: None,
        now=now,
    )


def describe(failure: Failure) -> str:
    """``recipient: 550 5.1.1 text``: the failure as the outbox list shows it."""
    text, code = failure.text, failure.reply_code
    if code is not None and not text.startswith(str(code)):
        text = f"{code} {text}"
    return f"{failure.recipient}: {text}" if failure.recipient else text
