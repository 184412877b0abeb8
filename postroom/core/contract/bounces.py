"""What a bounce reader returns: the failed recipients of a failure mail, why, and what it was about.

A bounce reader (hook ``postroom_read_bounce``) turns a parsed mail into a :class:`BounceReport`, or
None when the mail is not a bounce in the format it knows. Every reader is asked; the core merges
their reports (docs/architecture.md, "Bounces"). A reader need only name the address and what the
server said: the core fills in the reason class and hard/soft from the status code (RFC 3463) and
the text when the reader leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Reason:
    """The reason classes of a failed delivery (the values of :attr:`FailedRecipient.reason`)."""

    UNKNOWN_USER = "unknown user"
    UNKNOWN_HOST = "unknown host"
    MAILBOX_DISABLED = "mailbox disabled"
    MAILBOX_FULL = "mailbox full"
    TOO_BIG = "message too big"
    SPAM = "rejected as spam"
    POLICY = "policy"
    EXPIRED = "expired"
    NETWORK = "network error"
    SYSTEM = "system error"
    UNKNOWN = "unknown"

    #: Reasons that say nothing final about the address: the mail may well get through later.
    SOFT = frozenset({MAILBOX_FULL, EXPIRED, NETWORK, SYSTEM})


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a bounce reports as failed.

    ``status`` is the RFC 3463 enhanced status code (``5.1.1``) when the bounce gives one,
    ``reply_code`` the SMTP reply code (``550``), ``diagnostic`` what the server said. ``reason``
    (a :class:`Reason` value) and ``hard`` may be left None: the core derives them.
    """

    address: str
    status: str | None = None
    diagnostic: str = ""
    reply_code: int | None = None
    reason: str | None = None
    hard: bool | None = None


@dataclass
class BounceReport:
    """What one reader makes of a failure mail.

    ``format`` names the format recognised (``rfc3464``, ``opensmtpd``, ...), ``reporting_server``
    the server that wrote the report, ``original_message_ids`` the Message-IDs (without angle
    brackets) of the mail that bounced, when the report shows them.
    """

    format: str
    recipients: list[FailedRecipient] = field(default_factory=list)
    original_message_ids: list[str] = field(default_factory=list)
    reporting_server: str | None = None

    @property
    def hard_failures(self) -> list[FailedRecipient]:
        return [r for r in self.recipients if r.hard]

    def as_json(self) -> dict[str, object]:
        return {
            "format": self.format,
            "reporting_server": self.reporting_server,
            "original_message_ids": list(self.original_message_ids),
            "recipients": [
                {
                    "address": r.address,
                    "status": r.status,
                    "reply_code": r.reply_code,
                    "reason": r.reason,
                    "hard": r.hard,
                    "diagnostic": r.diagnostic,
                }
                for r in self.recipients
            ],
        }
