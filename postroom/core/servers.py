"""Connection settings for a profile's servers, and the check behind ``postroom profile test``."""

from __future__ import annotations

from dataclasses import dataclass

from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import (
    ConnectionSettings,
    Mailbox,
    ProtocolError,
    ProtocolPlugin,
    SendFailure,
)
from postroom.core.data.models import MediaProfile
from postroom.core.data.secrets import decrypt_password
from postroom.core.plugin_host import PluginHost


def _settings(
    profile: MediaProfile,
    plugin: ProtocolPlugin,
    plugins: PluginHost,
    host: str | None,
    port: int | None,
    folder: str | None,
) -> ConnectionSettings:
    """The settings a plugin connects with; the only place a protocol's ``DEFAULT_PORT`` is applied."""
    return ConnectionSettings(
        profile_id=profile.id,
        profile_name=profile.name,
        host=host,
        port=port or plugin.DEFAULT_PORT,
        username=profile.username,
        password=decrypt_password(profile.password_encrypted),
        folder=folder,
        tls_verify=profile.tls_verify,
        access_token=plugins.access_token(profile),
        allow_plaintext_login=profile.allow_plaintext_login,
    )


def incoming_protocol(profile: MediaProfile, plugins: PluginHost) -> ProtocolPlugin:
    plugin = plugins.protocol(profile.fetch_protocol)
    if plugin is None:
        raise ProtocolError(
            f"Profile {profile.name!r} cannot fetch: {plugins.missing('protocol', profile.fetch_protocol)}",
            "protocol",
        )
    return plugin


def incoming_settings(
    profile: MediaProfile, plugins: PluginHost, folder: str | None = None
) -> ConnectionSettings:
    plugin = incoming_protocol(profile, plugins)
    return _settings(
        profile,
        plugin,
        plugins,
        profile.incoming_host,
        profile.incoming_port,
        folder or profile.incoming_folder,
    )


def outgoing_settings(
    profile: MediaProfile, plugin: ProtocolPlugin, plugins: PluginHost
) -> ConnectionSettings:
    return _settings(
        profile, plugin, plugins, profile.outgoing_host, profile.outgoing_port, profile.outgoing_folder
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
    return CheckResult("outgoing", True, f"logged in to {_where(settings, profile.send_protocol)}")
