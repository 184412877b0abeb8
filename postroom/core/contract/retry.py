"""Retry contract: the error categories of a failed send, the retry settings, and the policy base class.

The category of a failed send is decided by the ``postroom_classify_send_error`` hook; the
category → policy table (the seed's :data:`CATEGORY_POLICIES` unless the contact centre or the
profile chose otherwise: ``postroom retry set-policy``) names its policy; the policy (a plugin)
is told the category and the failure (:class:`RetryContext`) and says when to try again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class ErrorCategory(StrEnum):
    """The seed's error categories of a failed send (the policy of each: :data:`CATEGORY_POLICIES`)."""

    UNIDENTIFIED = "unidentified error"
    ADDRESSING = "addressing error"
    MAILBOX = "mailbox error"
    MAIL_SYSTEM = "mail system error"
    NETWORK_ROUTING = "network routing error"
    DELIVERY_PROTOCOL = "mail delivery protocol error"
    MESSAGE_CONTENT = "message content error"
    SECURITY_POLICY = "security policy error"
    NO_SUCH_PROVIDER = "no such provider"
    CONNECTION = "connection error"
    UNKNOWN_HOST = "unknown host"
    INTERNAL = "internal error"


DEFAULT_RETRY = "default retry"
RATE_LIMIT_RETRY = "rate limit retry"
PROGRESSIVE_RETRY = "progressive retry"
NO_RETRY = "no retry"

#: The seed's retry policy of each category, by configuration code: the default of the category →
#: policy table, which the contact centre and each profile may override (core/data/retry_policies.py).
CATEGORY_POLICIES: Mapping[ErrorCategory, str] = {
    ErrorCategory.UNIDENTIFIED: DEFAULT_RETRY,
    ErrorCategory.ADDRESSING: NO_RETRY,
    ErrorCategory.MAILBOX: PROGRESSIVE_RETRY,
    ErrorCategory.MAIL_SYSTEM: PROGRESSIVE_RETRY,
    ErrorCategory.NETWORK_ROUTING: RATE_LIMIT_RETRY,
    ErrorCategory.DELIVERY_PROTOCOL: NO_RETRY,
    ErrorCategory.MESSAGE_CONTENT: NO_RETRY,
    ErrorCategory.SECURITY_POLICY: PROGRESSIVE_RETRY,
    ErrorCategory.NO_SUCH_PROVIDER: NO_RETRY,
    ErrorCategory.CONNECTION: PROGRESSIVE_RETRY,
    ErrorCategory.UNKNOWN_HOST: NO_RETRY,
    ErrorCategory.INTERNAL: NO_RETRY,
}


#: The range of each retry variable, by field: a year between tries at most, and a hundred retries,
#: so that even the hundred-and-first progressive retry lies well inside the dates Python and the
#: databases can hold (beyond them the failure could not be recorded and the outbox would stop).
RETRY_RANGES: Mapping[str, tuple[str, int, int]] = {
    "max_retry_count": ("maxRetryCount", 0, 100),
    "rate_limit_retry_time": ("rateLimitRetryTime", 0, 365 * 86400),
    "progressive_retry_interval": ("progressiveRetryInterval", 0, 365 * 86400),
}


@dataclass(frozen=True)
class RetrySettings:
    """A profile's retry variables (``media_profile_configuration``), with the seed's defaults.

    ``max_retry_count`` counts retries after the first attempt: with 3, a mail is tried at
    most four times.
    """

    max_retry_count: int = 3
    rate_limit_retry_time: int = 86400
    progressive_retry_interval: int = 300

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> RetrySettings:
        """Read the seed's JSON keys case-insensitively; numbers may be strings (``"3"``).

        A value that is not a number, or negative, is ignored (the default applies): it says
        nothing of what the operator meant. One above its range (typed in SQL, which no check
        sees) is clamped to the range's top, with a log line: it still means "wait long" or "try
        often", and the default would hammer a server the operator wanted left alone.
        """
        lowered = {str(k).lower(): v for k, v in properties.items()}
        defaults = cls()

        def number(field: str) -> int:
            key, _low, high = RETRY_RANGES[field]
            default: int = getattr(defaults, field)
            value = lowered.get(key.lower())
            if value is None or value == "":
                return default
            try:
                parsed = int(str(value).strip())
            except ValueError:
                return default
            if parsed < 0:
                return default
            if parsed > high:
                log.warning(
                    "the retry variable %s=%s is out of range (0-%s); using %s", key, parsed, high, high
                )
                return high
            return parsed

        return cls(**{field: number(field) for field in RETRY_RANGES})

    @classmethod
    def from_json_rows(cls, rows: list[str]) -> RetrySettings:
        """Merge several ``media_profile_properties`` JSON texts (later rows win); bad JSON is ignored."""
        merged: dict[str, Any] = {}
        for text in rows:
            try:
                value = json.loads(text) if text else {}
            except ValueError:
                continue
            if isinstance(value, dict):
                merged.update({str(k).lower(): v for k, v in value.items()})
        return cls.from_properties(merged)


@dataclass(frozen=True)
class RetryDecision:
    """When to try a failed send again; ``retry_at`` None means give up (the message fails)."""

    retry_at: datetime | None


@dataclass(frozen=True)
class RetryContext:
    """What a retry policy is told about one failure: its category, what the server said, and when.

    ``recipient`` is the refused recipient, or None when the whole attempt failed (every pending
    recipient). ``profile_id`` is the outgoing profile's id. ``retry_after`` is the wait in seconds a
    throttling server asked for (``Retry-After``), if any; the outbox never retries sooner, whatever
    the policy answers.
    """

    category: ErrorCategory
    retries_done: int
    now: datetime
    settings: RetrySettings
    text: str = ""
    reply_code: int | None = None
    enhanced_code: str | None = None
    recipient: str | None = None
    profile_id: int | None = None
    retry_after: float | None = None


class RetryPolicy:
    """A retry policy: a class returned from ``postroom_register_retry_policies``.

    A subclass provides ``NAME`` (its configuration code, e.g. ``"progressive retry"``, as the
    category → policy table names it) and implements :meth:`decide` (told the category and the
    failure) or, as policies written before it did, :meth:`next_attempt`.
    """

    NAME: ClassVar[str]
    LABEL: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.decide is RetryPolicy.decide and cls.next_attempt is RetryPolicy.next_attempt:
            raise TypeError(f"retry policy {cls.__name__} must implement decide() or next_attempt()")

    def decide(self, context: RetryContext) -> RetryDecision:
        """Decide the next attempt after a failure.

        :param context: the failure's category, the server's reply, the retries done before it
            (0 after the first attempt failed), its time (timezone-aware UTC) and the profile's
            retry variables.
        :return: when to retry, or ``RetryDecision(None)`` to give up.
        """
        return self.next_attempt(context.retries_done, context.now, context.settings)

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        """The older form of :meth:`decide`, without the failure (kept for existing policies).

        Called on a policy that implements only :meth:`decide`, it decides for an unidentified
        error with no reply text.
        """
        return self.decide(
            RetryContext(
                category=ErrorCategory.UNIDENTIFIED, retries_done=retries_done, now=now, settings=settings
            )
        )
