"""A maildir profile on an empty Maildir of its own: the cheapest profile a fetch cycle can run on."""

from __future__ import annotations

import mailbox
from pathlib import Path

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.profiles import ProfileFields, create_profile


def empty_maildir_profile(app: Postroom, folder: Path, name: str = "empty", fetch_interval: int = 30) -> int:
    """The id of a new profile ``name`` reading the (new, empty) Maildir ``folder``; not routed."""
    mailbox.Maildir(folder, create=True)
    with app.transaction() as session:
        profile = create_profile(
            session,
            app.plugins,
            DEFAULT_CONTACT_CENTER_ID,
            name,
            ProfileFields(fetch_protocol="maildir", incoming_folder=str(folder), fetch_interval=fetch_interval),
        )
        session.flush()
        return profile.id
