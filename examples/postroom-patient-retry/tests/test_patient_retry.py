"""The patient retry policy and its classifier, tested as their author would: postroom.testing, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom.testing import make_desk

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
FULL = "452 4.2.2 The recipient's mailbox is full"


def test_installed_it_decides_nothing_until_chosen_for_a_category() -> None:
    with make_desk() as desk:
        before = desk.send_failure(FULL, reply_code=452, now=NOW)
        desk.choose_policy("mailbox error", "patient retry")
        after = desk.send_failure(FULL, reply_code=452, now=NOW)
        routing = desk.send_failure("451 4.4.1 No answer from the next host", reply_code=451, now=NOW)
    assert (before.category, before.policy, before.retry_at) == (
        "mailbox error",
        "progressive retry",
        NOW + timedelta(seconds=300),
    )
    assert (after.category, after.policy, after.retry_at) == (
        "mailbox error",
        "patient retry",
        NOW + timedelta(hours=1),
    )
    assert (routing.policy, routing.retry_at) == ("rate limit retry", NOW + timedelta(days=1))


def test_it_is_told_the_failure_a_full_mailbox_gets_twice_the_retries() -> None:
    with make_desk() as desk:
        desk.choose_policy("mailbox error", "patient retry")
        desk.set_retry_settings(max_retry_count=2)
        full = [
            desk.send_failure(FULL, reply_code=452, retries_done=done, now=NOW).retry_at for done in range(5)
        ]
        other = desk.send_failure(
            "450 4.2.1 Mailbox disabled for now", reply_code=450, retries_done=2, now=NOW
        )
    hours = [1, 4, 12, 24]
    assert full == [NOW + timedelta(hours=h) for h in hours] + [None]
    assert (other.policy, other.retry_at) == ("patient retry", None)


def test_the_classifier_files_an_over_quota_reply_without_a_code_as_a_mailbox_error() -> None:
    with make_desk() as desk:
        verdict = desk.send_failure("452 Quota exceeded for this user", reply_code=452, now=NOW)
        unknown = desk.send_failure("554 Transaction failed", reply_code=554, now=NOW)
    assert (verdict.category, verdict.policy) == ("mailbox error", "progressive retry")
    assert unknown.category == "unidentified error"
