"""A profile's IDLE switch (``profile add/modify --idle/--no-idle``), kept in its JSON properties row.

On by default: a profile whose protocol and server can announce new mail (IMAP IDLE) is watched
by the worker. Kept as ``"idle": false`` in ``media_profile_properties`` (see profile_properties),
so the switch needs no schema change; a value typed by hand that is not a boolean reads as on.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.models import MediaProfile, MediaProfileConfiguration
from postroom.core.data.profile_properties import profile_properties

KEY = "idle"


def idle_enabled(session: Session, profile_id: int) -> bool:
    """Whether the worker may watch the profile's mailbox for new mail (the default: yes)."""
    document = session.scalar(
        select(MediaProfileConfiguration.media_profile_properties)
        .where(MediaProfileConfiguration.media_profile_id == profile_id)
        .order_by(MediaProfileConfiguration.id.desc())
        .limit(1)
    )
    try:
        properties = json.loads(document or "{}")
    except ValueError:
        return True
    return not (isinstance(properties, dict) and properties.get(KEY) is False)


def set_idle(session: Session, profile: MediaProfile, enabled: bool) -> None:
    row, properties = profile_properties(session, profile)
    properties[KEY] = enabled
    row.media_profile_properties = json.dumps(properties)
    session.flush()
