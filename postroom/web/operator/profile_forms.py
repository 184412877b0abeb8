"""The media-profile form: its fields (names and help as ``postroom profile add`` gives them) and the
posted form read into the core's :class:`ProfileFields`.

Nothing here validates a value: the form's text goes to ``create_profile``/``modify_profile``, which
refuse with the CLI's sentences. Only what click would do before the core sees a value is done here
(a number field's text read as an integer; a checkbox read as on or off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from werkzeug.datastructures import MultiDict

from postroom.core.contract.errors import UserError
from postroom.core.data.models.profiles import OUTGOING_LOGINS
from postroom.core.data.profiles import IMMUTABLE_FIELDS, ProfileFields

Kind = Literal["text", "int", "password", "flag", "protocol", "login"]


@dataclass(frozen=True)
class Field:
    """One input of the form: ``name`` is the ProfileFields attribute (and the CLI's option, with dashes)."""

    name: str
    label: str
    help: str
    kind: Kind = "text"
    #: What a new profile starts with (flags), as the CLI's defaults.
    default: bool = False

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def fixed(self) -> bool:
        """Fixed after creation (shown, not editable, on the edit form)."""
        return self.name in IMMUTABLE_FIELDS


#: The form's sections and fields, in the order of ``postroom profile add --help``.
SECTIONS: list[tuple[str, list[Field]]] = [
    (
        "Replies",
        [
            Field("send_from_name", "Send-from name", "Sender name on replies (at most 52 characters)."),
            Field("send_from_address", "Send-from address", "Sender address on replies."),
            Field("subject_prefix", "Subject prefix", "Prefix of reply subjects, e.g. [ACME Support]."),
            Field("reply_to", "Reply-To", "Reply-To address of replies (empty switches Reply-To off)."),
        ],
    ),
    (
        "Incoming server",
        [
            Field("fetch_protocol", "Fetch protocol", "The protocol mail is fetched with (fixed after creation).", "protocol"),
            Field("incoming_host", "Incoming host", "The server mail is fetched from."),
            Field("incoming_port", "Incoming port", "Its port (empty: the protocol's).", "int"),
            Field("incoming_folder", "Incoming folder", "Folder to fetch from (fixed after creation)."),
            Field(
                "username",
                "Username",
                "Login name on the incoming server (and the outgoing one, outgoing login 'same').",
            ),
            Field("password", "Password", "The login's password (write-only: never shown; on edit, empty keeps the stored one).", "password"),
            Field("fetch_interval", "Fetch interval", "Seconds between fetches (default 10).", "int"),
            Field("fetch_last_days", "Fetch last days", "Fetch only mail of the last N days (0: all).", "int"),
            Field("delete_on_fetch", "Delete on fetch", "Delete mail on the server once stored.", "flag"),
            Field(
                "idle",
                "IDLE",
                "Let the worker watch the mailbox for new mail (IMAP IDLE) between polls (default on).",
                "flag",
                default=True,
            ),
            Field("incoming_allowed", "Incoming allowed", "Allow fetching.", "flag", default=True),
        ],
    ),
    (
        "Outgoing server",
        [
            Field("send_protocol", "Send protocol", "The protocol replies are sent with (fixed after creation).", "protocol"),
            Field("outgoing_host", "Outgoing host", "The server replies are sent through."),
            Field("outgoing_port", "Outgoing port", "Its port (empty: the protocol's).", "int"),
            Field(
                "outgoing_folder", "Outgoing folder", "Folder that keeps a copy of each sent mail (fixed after creation)."
            ),
            Field(
                "outgoing_login",
                "Outgoing login",
                "How to log in to the outgoing server: same (the incoming login, the default), password "
                "(its own user and password), token (an access token from a plugin), none (a relay, no AUTH).",
                "login",
            ),
            Field(
                "outgoing_username",
                "Outgoing username",
                "Login name on the outgoing server (outgoing login 'password'; 'token': the mailbox).",
            ),
            Field(
                "outgoing_password",
                "Outgoing password",
                "The outgoing server's password (write-only: never shown; on edit, empty keeps the stored one).",
                "password",
            ),
            Field("outgoing_allowed", "Outgoing allowed", "Allow sending.", "flag", default=True),
        ],
    ),
    (
        "Security",
        [
            Field("tls_verify", "Verify TLS", "Verify TLS certificates (default on).", "flag", default=True),
            Field(
                "allow_plaintext_login",
                "Allow plaintext login",
                "Log in even where the server offers no STARTTLS, sending the password unencrypted (default off).",
                "flag",
            ),
        ],
    ),
]

FIELDS = [field for _, section in SECTIONS for field in section]
LOGINS = OUTGOING_LOGINS


def _integer(text: str, field: Field) -> int | None:
    """The number typed (None when empty), or click's refusal of what is not one."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"Invalid value for '{field.option}': {text!r} is not a valid integer.") from None


@dataclass
class Posted:
    """The form read: the profile's fields, and the IDLE switch (which the core keeps apart)."""

    fields: ProfileFields
    idle: bool | None


def read_form(form: MultiDict[str, str], *, creating: bool) -> Posted:
    """The posted form as the CLI's options would give it.

    A new profile: an empty text field is "not given" (the core's default). An edit: every text field
    shown is sent, so an empty one clears the value as ``--subject-prefix ''`` does; a password left
    empty keeps the stored one. Fields fixed after creation are not on the edit form: when a post
    carries one anyway, it goes to ``modify_profile``, which refuses a change with the CLI's sentence.
    ``incoming_allowed``/``outgoing_allowed`` on a new profile are sent only when the operator chose
    (the core's default follows the protocols, as without ``--incoming``/``--no-incoming``).
    """
    values: dict[str, object] = {}
    idle: bool | None = None
    for field in FIELDS:
        if field.kind == "flag":
            if creating and field.name in ("incoming_allowed", "outgoing_allowed"):
                choice = form.get(field.name, "")
                value: object = {"on": True, "off": False}.get(choice)
            else:
                value = form.get(field.name) == "on"
            if field.name == "idle":
                # A new profile watches its mailbox unless told not to (``--no-idle``), as the CLI's.
                idle = None if creating and value else bool(value)
                continue
            values[field.name] = value
            continue
        if field.name not in form:
            continue
        text = form.get(field.name, "")
        if field.kind == "int":
            values[field.name] = _integer(text, field)
        elif field.kind == "password":
            values[field.name] = text or None
        elif creating or field.kind in ("protocol", "login"):
            values[field.name] = text if text.strip() else None
        else:
            values[field.name] = text
    return Posted(ProfileFields(**values), idle)  # type: ignore[arg-type]


def changes_only(fields: ProfileFields, current: dict[str, Any]) -> ProfileFields:
    """Of an edit form's fields, those that differ from ``current`` (the profile's values as the form
    showed them), as ``profile modify`` is given only the options the operator types: an empty field
    of a value the profile never had is not an empty value to check. Fields fixed after creation and
    passwords are always passed on (the core refuses the one, stores the other)."""
    kept: dict[str, Any] = {}
    for key, value in fields.given().items():
        shown = current.get(key)
        if key in IMMUTABLE_FIELDS or key in ("password", "outgoing_password"):
            kept[key] = value
        elif isinstance(value, str) and not isinstance(shown, bool):
            if value != ("" if shown is None else str(shown)):
                kept[key] = value
        elif value != shown:
            kept[key] = value
    return ProfileFields(**kept)


def audit_detail(fields: ProfileFields) -> dict[str, object]:
    """What the audit log keeps of a change: the fields given, a password only as "changed"."""
    return fields.audit_detail()
