"""A profile's JSON properties (``media_profile_configuration``): its retry variables and its retry-policy choices.

The seed keeps them as a JSON document in the profile's newest configuration row; both the retry
variables (``configuration.set_retry_settings``) and the category → policy choices
(``retry_policies``) are written into that one document, so both open it here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.models import MediaProfile, MediaProfileConfiguration


def profile_properties(session: Session, profile: MediaProfile) -> tuple[MediaProfileConfiguration, dict[str, Any]]:
    """The profile's newest configuration row (added to the session if it has none) and its document.

    A document that is not a JSON object (typed by hand in SQL) reads as empty; the caller writes
    the row's ``media_profile_properties`` back when it changes something.
    """
    row = session.scalar(
        select(MediaProfileConfiguration)
        .where(MediaProfileConfiguration.media_profile_id == profile.id)
        .order_by(MediaProfileConfiguration.id.desc())
        .limit(1)
    )
    if row is None:
        row = MediaProfileConfiguration(
            media_profile_id=profile.id,
            contact_center_id=profile.contact_center_id,
            media_profile_type="email",
            media_profile_properties="{}",
        )
        session.add(row)
    try:
        properties = json.loads(row.media_profile_properties or "{}")
    except ValueError:
        properties = {}
    return row, properties if isinstance(properties, dict) else {}
