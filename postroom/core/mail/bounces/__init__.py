"""Reading bounces: reason classes and hard/soft, the original Message-IDs, merging the readers' reports.

The readers themselves are plugins (``postroom/plugins/bounces/``, hook ``postroom_read_bounce``);
this package holds what they share and what the core does with their reports.
"""

from postroom.core.mail.bounces.classify import completed, parse_reply_code, parse_status, reason_for
from postroom.core.mail.bounces.ids import compat_message, looks_like_bounce, original_message_ids
from postroom.core.mail.bounces.reading import Ask, BounceReading, merge, read_bounce

__all__ = [
    "Ask",
    "BounceReading",
    "compat_message",
    "completed",
    "looks_like_bounce",
    "merge",
    "original_message_ids",
    "parse_reply_code",
    "parse_status",
    "read_bounce",
    "reason_for",
]
