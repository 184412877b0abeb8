"""Protocols describe themselves: the core reads their class attributes and never names one.

A profile's defaults and checks come from its protocol class, and whether a profile fetches or
sends is answered once, by ``MediaProfile``, for Python and for SQL alike.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.contract.protocols import NO_PROTOCOL
from postroom.core.data.models import MediaProfile
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.plugin_host import PluginHost
from postroom.core.servers import incoming_settings, outgoing_settings

CORE = Path(__file__).resolve().parents[2] / "postroom" / "core"
BUILTIN_PROTOCOLS = sorted(PluginHost().protocols)


def _string_constants(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_the_core_names_no_protocol_and_spells_none_once() -> None:
    named: dict[str, set[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        if path.name == "plugin_host.py":  # the list of builtin plugin modules it loads by name
            continue
        found = _string_constants(path) & {*BUILTIN_PROTOCOLS, NO_PROTOCOL, "INBOX", "Inbox"}
        if found:
            named[str(path.relative_to(CORE))] = found

    assert "maildir" in BUILTIN_PROTOCOLS and "imap" in BUILTIN_PROTOCOLS
    # The other "none" is a word of its own: the outgoing login of a relay (issue 17), spelled once too.
    assert named == {"contract/protocols.py": {NO_PROTOCOL}, "data/logins.py": {"none"}}


@pytest.mark.parametrize("name", BUILTIN_PROTOCOLS)
def test_a_profile_gets_its_protocols_default_folder_and_port_from_the_class(
    app: Postroom, name: str
) -> None:
    cls = app.plugins.protocols[name]
    values = ProfileFields(outgoing_host="mail.example.test", incoming_host="mail.example.test")
    if cls.CAN_FETCH:
        values.fetch_protocol = name
        values.incoming_folder = "/srv/mail/in" if cls.NEEDS_FOLDER else None
    if cls.CAN_SEND:
        values.send_protocol = name
        values.outgoing_folder = "/srv/mail/sent" if cls.NEEDS_FOLDER else None

    with app.transaction() as session:
        profile = create_profile(session, app.plugins, 1, "support", values)
        fetching = incoming_settings(profile, app.plugins) if cls.CAN_FETCH else None
        plugin = app.plugins.protocol(name)
        assert plugin is not None
        sending = outgoing_settings(profile, plugin, app.plugins) if cls.CAN_SEND else None

    for settings in (fetching, sending):
        if settings is not None:
            assert settings.port == cls.DEFAULT_PORT
    if fetching is not None:
        assert fetching.folder == (cls.DEFAULT_FOLDER or values.incoming_folder)
        assert profile.incoming_folder == fetching.folder  # stored, so 'profile show' shows it
    assert (profile.incoming_port, profile.outgoing_port) == (None, None)


def test_can_fetch_and_can_send_give_the_same_answer_in_python_and_in_sql(app: Postroom) -> None:
    imap = {"fetch_protocol": "imap", "incoming_host": "imap.example.test"}
    smtp = {"send_protocol": "smtp", "outgoing_host": "smtp.example.test"}
    with app.transaction() as session:
        for name, values in {
            "both": {**imap, **smtp},
            "fetch-only": imap,
            "send-only": smtp,
            "both-switched-off": {**imap, **smtp, "incoming_allowed": False, "outgoing_allowed": False},
            "neither": {},
            "deleted": {**imap, **smtp},
        }.items():
            create_profile(session, app.plugins, 1, name, ProfileFields(**values))
        deleted = session.scalar(select(MediaProfile).where(MediaProfile.name == "deleted"))
        assert deleted is not None
        deleted.deleted_at = datetime.now(UTC)  # as a deletion leaves the row (only the date here)

    with app.transaction() as session:
        profiles = session.scalars(select(MediaProfile).order_by(MediaProfile.id)).all()
        in_python = (
            [p.name for p in profiles if p.can_fetch],
            [p.name for p in profiles if p.can_send],
        )
        in_sql = tuple(
            list(session.scalars(select(MediaProfile.name).where(question).order_by(MediaProfile.id)))
            for question in (MediaProfile.can_fetch, MediaProfile.can_send)
        )

    assert in_python == (["both", "fetch-only"], ["both", "send-only"])
    assert in_sql == in_python
