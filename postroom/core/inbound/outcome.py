"""A fetch cycle's outcome on its profile's row: status, last error, failures in a row, last fetch.

Written by one Core UPDATE in the transaction that ends the cycle, every cycle: either alone
(:func:`record_outcome`, ``postroom fetch``) or, in the worker, together with the lease's release
and the next fetch time (``core/worker/leases.py``'s ``release_after_cycle``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from postroom.core.data.models import MediaProfile, ProfileStatus


@dataclass
class CycleEnd:
    """A cycle's outcome, to be written on its profile's row in the cycle's last transaction."""

    profile_id: int
    name: str
    fetch_interval: int
    #: The columns written: status, last_error, consecutive_failures, last_fetch_at.
    values: dict[str, Any] = field(default_factory=dict)
    #: The profile's protocol can wait for new mail (``CAN_WAIT_FOR_MAIL``, IMAP IDLE).
    can_wait: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.values["status"] == ProfileStatus.OK)

    @property
    def consecutive_failures(self) -> int:
        return int(self.values["consecutive_failures"])


_PROFILE = cast(Table, MediaProfile.__table__)
_OUTCOME = (
    update(_PROFILE)
    .where(_PROFILE.c.id == bindparam("profile"))
    .values(
        status=bindparam("status"),
        last_error=bindparam("last_error"),
        consecutive_failures=bindparam("consecutive_failures"),
        last_fetch_at=bindparam("last_fetch_at", type_=_PROFILE.c.last_fetch_at.type),
    )
)


def record_outcome(session: Session, end: CycleEnd) -> None:
    """Write the cycle's outcome alone (a Core UPDATE: it runs every cycle, the ORM's flush costs more)."""
    session.connection().execute(_OUTCOME, {"profile": end.profile_id, **end.values})
