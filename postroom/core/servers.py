"""Connection settings for a profile's servers, and the check behind ``postroom profile test``.

Imports no SQLAlchemy (the models are only its argument types): the worker's standby
(``core/worker/standby.py``), which waits without the database stack, builds its settings here too
(:func:`password_settings`), so that they are the engine's to the letter (issue 18).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import (
    ConnectionSettings,
    Mailbox,
    ProtocolError,
    ProtocolPlugin,
    SendFailure,
)
from postroom.core.data.logins import OUTGOING_LOGINS, OutgoingLogin
from postroom.core.data.secrets import decrypt_password

if TYPE_CHECKING:
    from postroom.core.data.models import MediaProfile
    from postroom.core.plugin_host import PluginHost


class IncomingColumns(Protocol):
    """The columns the incoming server's settings are built from: a ``MediaProfile``, or the standby's row."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def incoming_host(self) -> str | None: ...
    @property
    def incoming_port(self) -> int | None: ...
    @property
    def incoming_folder(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password_encrypted(self) -> bytes | None: ...
    @property
    def tls_verify(self) -> bool: ...
    @property
    def allow_plaintext_login(self) -> bool: ...


@dataclass(frozen=True)
class _Login:
    """Who a connection logs in as; the secrets are decrypted, hence kept out of ``repr``."""

    username: str | None
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)


def _settings(
    profile: IncomingColumns,
    plugin: ProtocolPlugin,
    host: str | None,
    port: int | None,
    folder: str | None,
    login: _Login,
    plugins: PluginHost | None,
    server: str,
) -> ConnectionSettings:
    """The settings a plugin connects with; the only place a protocol's ``DEFAULT_PORT`` is applied."""
    return ConnectionSettings(
        profile_id=profile.id,
        profile_name=profile.name,
        host=host,
        port=port or plugin.DEFAULT_PORT,
        username=login.username,
        password=login.password,
        folder=folder,
        tls_verify=profile.tls_verify,
        access_token=login.access_token,
        allow_plaintext_login=profile.allow_plaintext_login,
        renew_token=_renewal(profile, plugins, server) if login.access_token else None,
    )


def _renewal(
    profile: IncomingColumns, plugins: PluginHost | None, server: str
) -> Callable[[], str | None] | None:
    """How a token is asked for again (a token comes only from a hook: no plugin host, no token)."""
    if plugins is None:
        return None
    loaded = cast("MediaProfile", profile)  # a token is given only for a loaded profile
    return lambda: plugins.access_token(loaded, server)


def _incoming_login(profile: MediaProfile, plugins: PluginHost) -> _Login:
    return _Login(
        profile.username,
        decrypt_password(profile.password_encrypted),
        plugins.access_token(profile, "incoming"),
    )


def _outgoing_login(profile: MediaProfile, plugins: PluginHost) -> _Login:
    """The outgoing server's login, as ``profile.outgoing_login`` says (issue 17).

    ``same``: the incoming login (and a token the hook gives for the outgoing server);
    ``password``: the outgoing server's own user and password, no token asked for;
    ``token``: a token the hook must give, for ``outgoing_username`` (else ``username``);
    ``none``: no login at all, for a relay that takes mail without AUTH.
    """
    mode = profile.outgoing_login or OutgoingLogin.SAME.value
    if mode == OutgoingLogin.SAME:
        return _Login(
            profile.username,
            decrypt_password(profile.password_encrypted),
            plugins.access_token(profile, "outgoing"),
        )
    if mode == OutgoingLogin.PASSWORD:
        return _Login(profile.outgoing_username, decrypt_password(profile.outgoing_password_encrypted))
    if mode == OutgoingLogin.TOKEN:
        token = plugins.access_token(profile, "outgoing")
        if not token:
            raise SendFailure(
                f"Profile {profile.name!r} logs in to its outgoing server with an access token, but no "
                "installed, enabled plugin gave one (hook postroom_get_access_token, server 'outgoing').",
                kind="auth",
            )
        return _Login(profile.outgoing_username or profile.username, access_token=token)
    if mode == OutgoingLogin.NONE:
        return _Login(None)
    raise SendFailure(
        f"Profile {profile.name!r} has outgoing login {mode!r}, which is not one of: "
        f"{', '.join(OUTGOING_LOGINS)}; set one with 'postroom profile modify {shlex.quote(profile.name)} "
        "--outgoing-login ...'.",
        kind="auth",
    )


def incoming_protocol(profile: MediaProfile, plugins: PluginHost) -> ProtocolPlugin:
    plugin = plugins.protocol(profile.fetch_protocol)
    if plugin is None:
        raise ProtocolError(
            f"Profile {profile.name!r} cannot fetch: {plugins.missing('protocol', profile.fetch_protocol)}",
            "protocol",
        )
    return plugin


def password_settings(profile: IncomingColumns, plugin: ProtocolPlugin) -> ConnectionSettings:
    """The incoming server's settings with the stored password and no access token.

    The standby's (``core/worker/standby.py``): it fetches no profile that logs in with a token,
    and has no plugin host to ask for one. Otherwise what :func:`incoming_settings` builds.
    """
    login = _Login(profile.username, decrypt_password(profile.password_encrypted))
    return _settings(
        profile,
        plugin,
        profile.incoming_host,
        profile.incoming_port,
        profile.incoming_folder,
        login,
        None,
        "incoming",
    )


def incoming_settings(
    profile: MediaProfile, plugins: PluginHost, folder: str | None = None
) -> ConnectionSettings:
    """The incoming server's settings. The worker keeps them per profile while the profile's columns
    these are built from are unchanged: reading another column here means adding it to
    ``core/data/cycle_columns.py``'s ``CONFIGURATION_COLUMNS``."""
    plugin = incoming_protocol(profile, plugins)
    return _settings(
        profile,
        plugin,
        profile.incoming_host,
        profile.incoming_port,
        folder or profile.incoming_folder,
        _incoming_login(profile, plugins),
        plugins,
        "incoming",
    )


def outgoing_settings(
    profile: MediaProfile, plugin: ProtocolPlugin, plugins: PluginHost
) -> ConnectionSettings:
    """The outgoing server's settings, logged in to as the profile's ``outgoing_login`` says.

    Raises :class:`SendFailure` (kind ``auth``) where that login cannot be made up: ``token``
    without a token from any plugin, or a mode typed in SQL that is not one.
    """
    return _settings(
        profile,
        plugin,
        profile.outgoing_host,
        profile.outgoing_port,
        profile.outgoing_folder,
        _outgoing_login(profile, plugins),
        plugins,
        "outgoing",
    )


@dataclass
class CheckResult:
    """One line of ``profile test``: what was checked, whether it worked, and what was said."""

    what: str
    ok: bool
    detail: str


def _where(settings: ConnectionSettings, protocol: str) -> str:
    """How a check line names a server: ``imap 127.0.0.1:143 as 'alice'`` or ``maildir '/srv/mail'``."""
    if not settings.host:
        return f"{protocol} {settings.folder!r}"
    port = f":{settings.port}" if settings.port else ""
    login = f" as {settings.username!r}" if settings.username else ""
    return f"{protocol} {settings.host}{port}{login}"


def check_profile(profile: MediaProfile, plugins: PluginHost) -> list[CheckResult]:
    """Log in to the incoming and outgoing servers and check the folders, fetching nothing.

    A failure is a line of the result, never an exception: ``profile test`` shows every check.
    """
    results: list[CheckResult] = []
    if profile.incoming_allowed:
        results.extend(_check_incoming(profile, plugins))
    if profile.outgoing_allowed:
        results.append(_check_outgoing(profile, plugins))
    return results


def _check_incoming(profile: MediaProfile, plugins: PluginHost) -> list[CheckResult]:
    try:
        plugin = incoming_protocol(profile, plugins)
        settings = incoming_settings(profile, plugins)
        with plugin.open_mailbox(settings) as mailbox:
            mailbox.check()
            can_keep_copies = type(mailbox).append is not Mailbox.append
    except (ProtocolError, UserError) as error:
        return [CheckResult("incoming", False, str(error))]
    folder = f" and found folder {settings.folder!r}" if settings.host and settings.folder else ""
    results = [
        CheckResult("incoming", True, f"logged in to {_where(settings, profile.fetch_protocol)}{folder}")
    ]
    sender = plugins.protocol(profile.send_protocol) if profile.outgoing_allowed else None
    if sender is not None and profile.outgoing_folder and not sender.KEEPS_SENT_COPY:
        results.append(_check_copy_folder(profile, plugins, plugin, can_keep_copies))
    return results


def _check_copy_folder(
    profile: MediaProfile, plugins: PluginHost, plugin: ProtocolPlugin, can_keep_copies: bool
) -> CheckResult:
    """The outgoing folder, where copies of sent mail go through the incoming server."""
    folder = profile.outgoing_folder
    if not can_keep_copies:
        return CheckResult(
            "outgoing folder",
            False,
            f"Fetch protocol {profile.fetch_protocol!r} cannot keep copies of sent mail, "
            f"so outgoing folder {folder!r} of profile {profile.name!r} cannot be used.",
        )
    try:
        with plugin.open_mailbox(incoming_settings(profile, plugins, folder=folder)) as mailbox:
            mailbox.check()
    except ProtocolError as error:
        if error.kind != "folder":
            return CheckResult("outgoing folder", False, str(error))
        # Storing the first copy creates the folder (Mailbox.append), so a missing one is fine.
        return CheckResult(
            "outgoing folder", True, f"{folder!r} does not exist yet; the first sent copy creates it"
        )
    return CheckResult("outgoing folder", True, f"found folder {folder!r}")


def _check_outgoing(profile: MediaProfile, plugins: PluginHost) -> CheckResult:
    plugin = plugins.protocol(profile.send_protocol)
    if plugin is None:
        return CheckResult(
            "outgoing",
            False,
            f"Profile {profile.name!r} cannot send: {plugins.missing('protocol', profile.send_protocol)}",
        )
    try:
        settings = outgoing_settings(profile, plugin, plugins)
        with plugin.open_sender(settings):
            pass
    except SendFailure as error:
        return CheckResult("outgoing", False, error.text)
    except UserError as error:
        return CheckResult("outgoing", False, str(error))
    where = _where(settings, profile.send_protocol)
    if settings.host and not (settings.username or settings.password or settings.access_token):
        return CheckResult(
            "outgoing",
            True,
            f"connected to {where} without a login (outgoing login {OutgoingLogin.NONE.value!r})",
        )
    token = " with an access token" if settings.access_token else ""
    return CheckResult("outgoing", True, f"logged in to {where}{token}")
