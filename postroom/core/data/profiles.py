"""Email media profiles: validation, creation, modification (with immutable fields), deletion, JSON view."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.contract.protocols import NO_PROTOCOL
from postroom.core.data import validation
from postroom.core.data.columns import width
from postroom.core.data.configuration import retry_settings
from postroom.core.data.idle_switch import idle_enabled
from postroom.core.data.models import (
    MediaProfile,
    MediaProfileResolver,
    RoutingRule,
    agent_media_profile,
    campaign_media_profile,
    queue_media_profile,
    utcnow,
)
from postroom.core.data.models.profiles import OUTGOING_LOGINS, OutgoingLogin
from postroom.core.data.secrets import encrypt_password
from postroom.core.data.validation import check_address, check_port, check_single_line
from postroom.core.plugin_host import PluginHost

#: Fields fixed at creation: changing them would orphan the fetch ledger or the sent copies.
IMMUTABLE_FIELDS = {
    "send_protocol": "send protocol",
    "fetch_protocol": "fetch protocol",
    "incoming_folder": "incoming folder",
    "outgoing_folder": "outgoing folder",
}
SIGNATURE_POSITIONS = ("before", "after")
# Signature HTML keeps links and images (and their safe attributes); nh3's defaults drop scripts,
# event handlers and javascript: URLs.
_SIGNATURE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
}


@dataclass
class ProfileFields:
    """The settable fields of a profile; None means "not given" (keep / default)."""

    username: str | None = None
    password: str | None = None
    send_from_name: str | None = None
    send_from_address: str | None = None
    subject_prefix: str | None = None
    send_protocol: str | None = None
    outgoing_host: str | None = None
    outgoing_port: int | None = None
    outgoing_folder: str | None = None
    outgoing_login: str | None = None
    outgoing_username: str | None = None
    outgoing_password: str | None = None
    reply_to: str | None = None
    delete_on_fetch: bool | None = None
    fetch_protocol: str | None = None
    incoming_host: str | None = None
    incoming_port: int | None = None
    incoming_folder: str | None = None
    fetch_interval: int | None = None
    fetch_last_days: int | None = None
    tls_verify: bool | None = None
    allow_plaintext_login: bool | None = None
    incoming_allowed: bool | None = None
    outgoing_allowed: bool | None = None

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def audit_detail(self) -> dict[str, Any]:
        """What the audit log keeps of a change (console and CLI): the fields given, a password only as "(changed)"."""
        return {
            key: "(changed)" if key in ("password", "outgoing_password") else value
            for key, value in self.given().items()
        }


def sanitise_signature(html: str) -> str:
    """Signature HTML with links and images kept, and everything that could run or track removed.

    nh3 is imported here, not with the module: a worker that never sets a signature need not hold
    its compiled sanitiser (about 1.6 MiB, issue 18).
    """
    import nh3

    return nh3.clean(
        html,
        attributes=_SIGNATURE_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer",
    )


def live_profiles(session: Session, contact_center_id: int | None = None) -> list[MediaProfile]:
    query = select(MediaProfile).where(MediaProfile.deleted_at.is_(None)).order_by(MediaProfile.id)
    if contact_center_id is not None:
        query = query.where(MediaProfile.contact_center_id == contact_center_id)
    return list(session.scalars(query))


def get_profile(session: Session, name: str, contact_center_id: int) -> MediaProfile:
    profile = session.scalar(
        select(MediaProfile).where(
            MediaProfile.contact_center_id == contact_center_id,
            MediaProfile.name == name,
            MediaProfile.deleted_at.is_(None),
        )
    )
    if profile is None:
        raise NotFoundError(f"There is no media profile named {name!r}.")
    return profile


def _check_protocol(plugins: PluginHost, name: str, direction: str) -> str:
    if name == NO_PROTOCOL:
        return name
    cls = plugins.protocols.get(name)
    can = cls is not None and (cls.CAN_FETCH if direction == "fetch" else cls.CAN_SEND)
    if not can:
        choices = sorted(
            n for n, c in plugins.protocols.items() if (c.CAN_FETCH if direction == "fetch" else c.CAN_SEND)
        )
        unknown = f"{name!r} is not a {direction} protocol; choose one of: {', '.join([NO_PROTOCOL, *choices])}."
        # Disabled, failed or unknown: say which, and how to fix it.
        raise UserError(plugins.missing("protocol", name, unknown) if cls is None else unknown)
    return name


def _apply(profile: MediaProfile, values: dict[str, Any], plugins: PluginHost) -> None:
    """Validate and copy the given values onto ``profile`` (new or existing)."""
    if "send_from_name" in values:
        name = check_single_line(values["send_from_name"], "send-from name")
        limit = width(MediaProfile.send_from_name)
        if limit is not None and len(name) > limit:
            raise UserError(
                "You have exceeded the maximum character limit for the send-from name "
                f"({len(name)}/{limit})."
            )
        profile.send_from_name = name
    if "send_from_address" in values:
        profile.send_from_address = check_address(values["send_from_address"], "send-from address")
    if "reply_to" in values:
        if values["reply_to"] == "":
            profile.reply_to_enabled, profile.reply_to_address = False, None
        else:
            profile.reply_to_address = check_address(values["reply_to"], "reply-to address")
            profile.reply_to_enabled = True
    if "subject_prefix" in values:
        profile.subject_prefix = check_single_line(values["subject_prefix"], "subject prefix").strip() or None
    if "username" in values:
        profile.username = check_single_line(values["username"], "username") or None
    if "password" in values:
        profile.password_encrypted = encrypt_password(values["password"]) if values["password"] else None
    _apply_outgoing_login(profile, values)
    for key in ("outgoing_port", "incoming_port"):
        if key in values:
            setattr(profile, key, check_port(values[key], key.replace("_", " ")))
    for key in ("outgoing_host", "incoming_host"):
        if key in values:
            setattr(profile, key, check_single_line(values[key], key.replace("_", " ")).strip() or None)
    if "fetch_interval" in values:
        profile.fetch_interval = validation.FETCH_INTERVAL.check(values["fetch_interval"])
    if "fetch_last_days" in values:
        days = values["fetch_last_days"]
        profile.fetch_last_days = validation.FETCH_LAST_DAYS.check(days) or None
    for key in ("delete_on_fetch", "tls_verify", "allow_plaintext_login", "incoming_allowed", "outgoing_allowed"):
        if key in values:
            setattr(profile, key, bool(values[key]))
    if "send_protocol" in values:
        profile.send_protocol = _check_protocol(plugins, values["send_protocol"], "send")
    if "fetch_protocol" in values:
        profile.fetch_protocol = _check_protocol(plugins, values["fetch_protocol"], "fetch")
    for key in ("incoming_folder", "outgoing_folder"):
        if key in values:
            setattr(profile, key, check_single_line(values[key], key.replace("_", " ")).strip() or None)


def _apply_outgoing_login(profile: MediaProfile, values: dict[str, Any]) -> None:
    """The outgoing server's login (issue 17): its mode, and the user and password only ``password``
    (and, for the user, ``token``) uses; what a mode does not use is refused if given, else cleared,
    so no stale secret stays behind a mode that ignores it."""
    mode = values.get("outgoing_login", profile.outgoing_login) or OutgoingLogin.SAME.value
    if mode not in OUTGOING_LOGINS:
        # Given, or typed in SQL (then every change of the profile says how to repair it).
        raise UserError(f"{mode!r} is not an outgoing login; choose one of: {', '.join(OUTGOING_LOGINS)}.")
    profile.outgoing_login = mode
    username = values.get("outgoing_username")
    password = values.get("outgoing_password")
    uses: tuple[str, ...] = {
        OutgoingLogin.TOKEN: ("username",),
        OutgoingLogin.PASSWORD: ("username", "password"),
    }.get(OutgoingLogin(mode), ())
    for what, value, modes in (
        ("username", username, "'password' or 'token'"),
        ("password", password, "'password'"),
    ):
        if value and what not in uses:
            raise UserError(
                f"An outgoing {what} is used only with outgoing login {modes}; "
                f"profile {profile.name!r} has outgoing login {mode!r}."
            )
    if "outgoing_username" in values:
        profile.outgoing_username = check_single_line(username or "", "outgoing username").strip() or None
    if "outgoing_password" in values:
        profile.outgoing_password_encrypted = encrypt_password(password) if password else None
    if "username" not in uses:
        profile.outgoing_username = None
    if "password" not in uses:
        profile.outgoing_password_encrypted = None
    if mode == OutgoingLogin.PASSWORD and not profile.outgoing_username:
        raise UserError(f"Outgoing login 'password' of profile {profile.name!r} needs an outgoing username.")
    if mode == OutgoingLogin.PASSWORD and profile.outgoing_password_encrypted is None:
        raise UserError(f"Outgoing login 'password' of profile {profile.name!r} needs an outgoing password.")


def _check_complete(profile: MediaProfile, plugins: PluginHost) -> None:
    """Cross-field rules: an enabled direction needs its protocol and what that protocol says it needs."""
    p = profile
    for direction, allowed, protocol, host, folder in (
        ("incoming", p.incoming_allowed, p.fetch_protocol, p.incoming_host, p.incoming_folder),
        ("outgoing", p.outgoing_allowed, p.send_protocol, p.outgoing_host, p.outgoing_folder),
    ):
        if not allowed:
            continue
        if protocol != NO_PROTOCOL and protocol not in plugins.protocols:
            # Only a profile made while its protocol's plugin was enabled names one that is not
            # (the protocol is fixed at creation, and checked then): its other fields stay editable.
            continue
        cls = plugins.protocols.get(protocol)
        if cls is None:
            raise UserError(
                f"Profile {profile.name!r} allows {direction} mail but has no {direction} protocol."
            )
        if cls.NEEDS_HOST and not host:
            raise UserError(f"The {direction} host is required for protocol {protocol!r}.")
        if cls.NEEDS_FOLDER and not folder:
            raise UserError(f"The {direction} folder is required for protocol {protocol!r}.")


def create_profile(
    session: Session, plugins: PluginHost, contact_center_id: int, name: str, values: ProfileFields
) -> MediaProfile:
    name = check_single_line(name, "profile name").strip()
    if not name:
        raise UserError("A profile needs a name.")
    if session.scalar(
        select(MediaProfile.id).where(
            MediaProfile.contact_center_id == contact_center_id,
            MediaProfile.name == name,
            MediaProfile.deleted_at.is_(None),
        )
    ):
        raise UserError(f"A media profile named {name!r} already exists.")
    profile = MediaProfile(
        contact_center_id=contact_center_id,
        name=name,
        send_protocol=NO_PROTOCOL,
        fetch_protocol=NO_PROTOCOL,
        fetch_interval=10,
        tls_verify=True,
        allow_plaintext_login=False,
        outgoing_login=OutgoingLogin.SAME.value,
        delete_on_fetch=False,
        reply_to_enabled=False,
        signature_position="before",
        status="ok",
        consecutive_failures=0,
    )
    given = values.given()
    _apply(profile, given, plugins)
    profile.incoming_allowed = given.get("incoming_allowed", profile.fetch_protocol != NO_PROTOCOL)
    profile.outgoing_allowed = given.get("outgoing_allowed", profile.send_protocol != NO_PROTOCOL)
    fetch_protocol = plugins.protocols.get(profile.fetch_protocol)
    if fetch_protocol is not None and not profile.incoming_folder:
        profile.incoming_folder = fetch_protocol.DEFAULT_FOLDER
    _check_complete(profile, plugins)
    session.add(profile)
    session.flush()
    return profile


def modify_profile(
    session: Session, plugins: PluginHost, profile: MediaProfile, values: ProfileFields
) -> None:
    given = values.given()
    for key, label in IMMUTABLE_FIELDS.items():
        if key in given and given[key] != getattr(profile, key):
            raise UserError(
                f"The {label} of profile {profile.name!r} cannot be changed after creation; "
                "create a new profile instead."
            )
    _apply(profile, given, plugins)
    _check_complete(profile, plugins)
    profile.updated_at = utcnow()


def set_resolvers(session: Session, plugins: PluginHost, profile: MediaProfile, names: list[str]) -> None:
    """Replace the profile's ordered resolver list; unknown names are refused."""
    unknown = [n for n in names if n not in plugins.resolvers]
    if unknown:
        raise UserError(plugins.missing("resolver", unknown[0]))
    if len(set(names)) != len(names):
        raise UserError("A resolver may appear only once in a profile's list.")
    profile.resolvers.clear()
    session.flush()
    for position, name in enumerate(names, start=1):
        profile.resolvers.append(MediaProfileResolver(position=position, resolver_name=name))


def set_signature(profile: MediaProfile, html: str, position: str | None) -> None:
    profile.signature_html = sanitise_signature(html) if html.strip() else None
    if position is not None:
        if position not in SIGNATURE_POSITIONS:
            raise UserError("The signature goes 'before' or 'after' the quoted text.")
        profile.signature_position = position


def delete_profile(session: Session, profile: MediaProfile) -> None:
    """Delete a profile for good: detach it, disable its rules, keep its tickets and messages."""
    profile_id = profile.id
    for table in (campaign_media_profile, queue_media_profile, agent_media_profile):
        session.execute(delete(table).where(table.c.media_profile_id == profile_id))
    session.execute(
        update(RoutingRule).where(RoutingRule.media_profile_id == profile_id).values(enabled=False)
    )
    profile.deleted_at = utcnow()
    profile.incoming_allowed = False
    profile.outgoing_allowed = False
    profile.lease_owner = None
    session.flush()
    events.emit(events.profile_deleted, delete_profile, profile_id=profile_id, name=profile.name)


def profile_as_json(profile: MediaProfile, subject_preview: str | None = None) -> dict[str, Any]:
    """The JSON view of a profile (``profile list|show --json``). No password appears, not even masked."""
    data: dict[str, Any] = {
        "id": profile.id,
        "name": profile.name,
        "username": profile.username,
        "send_from_name": profile.send_from_name,
        "send_from_address": profile.send_from_address,
        "subject_prefix": profile.subject_prefix,
        "outgoing_allowed": profile.outgoing_allowed,
        "send_protocol": profile.send_protocol,
        "outgoing_host": profile.outgoing_host,
        "outgoing_port": profile.outgoing_port,
        "outgoing_folder": profile.outgoing_folder,
        "outgoing_login": profile.outgoing_login,
        "outgoing_username": profile.outgoing_username,
        "reply_to_enabled": profile.reply_to_enabled,
        "reply_to": profile.reply_to_address,
        "delete_on_fetch": profile.delete_on_fetch,
        "incoming_allowed": profile.incoming_allowed,
        "fetch_protocol": profile.fetch_protocol,
        "incoming_host": profile.incoming_host,
        "incoming_port": profile.incoming_port,
        "incoming_folder": profile.incoming_folder,
        "fetch_interval": profile.fetch_interval,
        "fetch_last_days": profile.fetch_last_days,
        "tls_verify": profile.tls_verify,
        "allow_plaintext_login": profile.allow_plaintext_login,
        "resolvers": [r.resolver_name for r in profile.resolvers],
        "signature_position": profile.signature_position,
        "has_signature": bool(profile.signature_html),
        "status": profile.status,
        "last_error": profile.last_error,
        "last_fetch_at": profile.last_fetch_at.isoformat() if profile.last_fetch_at else None,
    }
    if subject_preview is not None:
        data["subject_preview"] = subject_preview
    return data


def subject_preview(profile: MediaProfile, example: str = "Question about my order") -> str:
    """How a reply's subject will read with this profile's prefix and a ticket's case token."""
    from postroom.core.mail.subjects import format_case_token, reply_subject

    return reply_subject(example, profile.subject_prefix, format_case_token(None, 42))


def profile_names(session: Session) -> dict[int, str]:
    """Profile id -> name, deleted profiles included (their messages and rules still name them)."""
    return dict(session.execute(select(MediaProfile.id, MediaProfile.name)).all())


def profile_details(session: Session, profile: MediaProfile) -> dict[str, Any]:
    """``profile show --json``: the profile's JSON view, a reply subject's preview and its retry settings."""
    document = profile_as_json(profile, subject_preview=subject_preview(profile))
    retry = retry_settings(session, profile.id)
    document["retry"] = {
        "max_retry_count": retry.max_retry_count,
        "rate_limit_retry_time": retry.rate_limit_retry_time,
        "progressive_retry_interval": retry.progressive_retry_interval,
    }
    document["idle"] = idle_enabled(session, profile.id)
    document["warnings"] = plaintext_login_warnings(profile)
    return document


def plaintext_login_warnings(profile: MediaProfile) -> list[str]:
    """What ``profile show`` warns of: a profile allowed to send its login where anyone on the path reads it."""
    if not profile.allow_plaintext_login:
        return []
    return [
        f"Profile {profile.name!r} may send its password or token unencrypted to a server that offers no "
        f"STARTTLS (or to a man in the middle who strips it); switch this off with "
        f"'postroom profile modify {profile.name} --no-allow-plaintext-login'."
    ]
