"""What the media-profile page tests share: a profile made directly in the live console's database,
and the refusal sentence a page shows."""

from __future__ import annotations

import html
import re
import uuid

from sqlalchemy import select

from postroom.core.data import profiles
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import MediaProfile
from postroom.core.data.profiles import ProfileFields
from tests.web.conftest import LiveServer


def unique(prefix: str = "support") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_profile(live_server: LiveServer, resolvers: tuple[str, ...] = ()) -> str:
    """A new IMAP + SMTP profile (as ``postroom profile add`` would make it) and its name."""
    name = unique()
    app = live_server.app
    with app.transaction() as session:
        profile = profiles.create_profile(
            session,
            app.plugins,
            DEFAULT_CONTACT_CENTER_ID,
            name,
            ProfileFields(
                fetch_protocol="imap",
                incoming_host="mail.example.com",
                send_protocol="smtp",
                outgoing_host="smtp.example.com",
                send_from_address="support@example.com",
                username="support",
                password="secret-password",
            ),
        )
        if resolvers:
            profiles.set_resolvers(session, app.plugins, profile, list(resolvers))
    return name


def stored(live_server: LiveServer, name: str) -> MediaProfile:
    """The profile row as the database has it now (detached, attributes and resolvers loaded)."""
    with live_server.app.transaction() as session:
        profile = session.scalars(select(MediaProfile).where(MediaProfile.name == name)).one()
        _ = [r.resolver_name for r in profile.resolvers]
        session.expunge(profile)
    return profile


def form_error(page: str) -> str:
    """The refusal sentence of a form page (the text of its ``#form-error``), unescaped."""
    found = re.search(r'id="form-error"[^>]*>([^<]*)<', page)
    assert found, page
    return html.unescape(found.group(1))


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)
