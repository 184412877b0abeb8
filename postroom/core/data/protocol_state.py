"""A profile's protocol state between fetch cycles (``Mailbox.sync_state``): read before, saved after.

The state belongs to the pair (profile, protocol): a profile switched to another fetch protocol
starts afresh, and one switched back finds its old state, which its protocol may still judge stale.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from postroom.core.data.models import ProtocolState, utcnow


def load_state(session: Session, profile_id: int, protocol: str) -> str | None:
    """The state saved after the profile's last complete cycle with ``protocol``, or None."""
    row = session.get(ProtocolState, (profile_id, protocol))
    return row.state if row is not None else None


def save_state(session: Session, profile_id: int, protocol: str, state: str) -> None:
    """Keep ``state`` for the next cycle (in the caller's transaction, which commits it)."""
    row = session.get(ProtocolState, (profile_id, protocol))
    if row is None:
        session.add(
            ProtocolState(media_profile_id=profile_id, protocol=protocol, state=state, updated_at=utcnow())
        )
    else:
        row.state, row.updated_at = state, utcnow()
