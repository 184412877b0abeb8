"""The plain-text bounce families: how each server's report is recognised and where its report ends.

Each entry was written from what the server sends (the samples in tests/bounces/corpus and their
sources). ``signature`` is searched in the bounce's headers and the start of its text; the report
is the text after ``start`` (else from the top) up to ``end`` (where the returned original begins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    signature: re.Pattern[str]
    start: re.Pattern[str] | None = None
    end: re.Pattern[str] | None = None


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


FAMILIES: tuple[Family, ...] = (
    Family(  # Office 365 / Exchange Online reports with only text and HTML parts
        "office365",
        _re(r"Delivery has failed to these recipients or groups|Your message to .+ couldn.t be delivered|Diagnostic information for administrators"),
        start=_re(r"Delivery has failed to these recipients or groups|couldn.t be delivered"),
        end=_re(r"^[ \t]*Original message headers:"),
    ),
    Family(  # old sendmail (V5): a transcript, then "Unsent message follows"
        "sendmail-v5",
        _re(r"^[ \t]*-+ ?Unsent message follows ?-+"),
        start=_re(r"^[ \t]*-+ ?Transcript of session follows ?-+"),
        end=_re(r"^[ \t]*-+ ?Unsent message follows ?-+"),
    ),
    Family(
        "opensmtpd",
        _re(r"This is the MAILER-DAEMON, please DO NOT REPLY|error has occurred while attempting to deliver a message for"),
        start=_re(r"following list of recipients:"),
        end=_re(r"^[ \t]*Below is a copy of the original message"),
    ),
    Family(  # Lotus Domino
        "domino",
        _re(r"^Subject: DELIVERY FAILURE:|not listed in Domino Directory|was not delivered to:"),
        start=_re(r"was not delivered to:"),
        end=_re(r"^[ \t]*-+ ?(Returned Message|Original message)"),
    ),
    Family(  # Lotus Notes (SMTP MTA)
        "notes",
        _re(r"^-+ Failure Reasons +-+"),
        start=_re(r"^-+ Failure Reasons +-+"),
        end=_re(r"^-+ Returned Message -+"),
    ),
    Family(
        "verizon",
        _re(r"vtext\.com|vzwpix\.com|Message could not be delivered to mobile|^Error: Invalid user address"),
        end=_re(r"^[ \t]*(Size \(in bytes\)|Number of lines):"),
    ),
    Family(  # au by KDDI (EZweb) and the other Japanese carriers' relays
        "ezweb",
        _re(r"ezweb\.ne\.jp|Each of the following recipients was rejected by a remote|次のあて先へのメッセージはエラー"),
        end=_re(r"^[ \t]*-+ ?(Original message|Returned message)"),
    ),
    Family(
        "yahoo",
        _re(r"Sorry, we were unable to deliver your message to the following address"),
        start=_re(r"Sorry, we were unable to deliver your message"),
        end=_re(r"^[ \t]*-+ ?Below this line is a copy of the message"),
    ),
    Family(
        "amazon-workmail",
        _re(r"An error occurred while trying to deliver the mail to the following recipients|X-Mailer: Amazon WorkMail|amazonses\.com"),
        start=_re(r"to the following recipients:"),
    ),
    Family(  # Trend Micro InterScan MSS
        "interscan",
        _re(r"InterScan|^[ \t]*Sent <<< RCPT TO:"),
        end=_re(r"^\*+ +End of message +\*+"),
    ),
    Family(
        "mailmarshal",
        _re(r"The following recipients were affected:|MailMarshal"),
        start=_re(r"^[ \t]*Could not be delivered because of"),
        end=_re(r"^[ \t]*Additional Information\s*$"),
    ),
    Family(
        "mfilter",
        _re(r"m-FILTER"),
        end=_re(r"^-+ ?original message"),
    ),
    Family(
        "activehunter",
        _re(r"Active!Hunter"),
        start=_re(r"^[ \t]*-+ The following addresses had (permanent fatal|transient non-fatal) errors -+"),
        end=_re(r"^[ \t]*-+ ?(Original message|Unsent message)"),
    ),
)
