"""Connection settings for a profile's servers, and the check behind ``postroom profile test``."""

from __future__ import annotations

from dataclasses import dataclass

from postroom.core.models import MediaProfile
from postroom.core.plugins import PluginHost
from postroom.core.protocols import ConnectionSettings, ProtocolError, ProtocolPlugin, SendFailure
from postroom.core.secrets import decrypt_password


def _settings(
    profile: MediaProfile,
    plugin: ProtocolPlugin,
    plugins: PluginHost,
    host: str | None,
    port: int | None,
    folder: str | None,
) -> ConnectionSettings:
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
    )


def incoming_protocol(profile: MediaProfile, plugins: PluginHost) -> ProtocolPlugin:
    plugin = plugins.protocol(profile.fetch_protocol)
    if plugin is None:
        raise ProtocolError(
            f"Fetch protocol {profile.fetch_protocol!r} of profile {profile.name!r} has no installed, enabled plugin.",
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


def check_profile(profile: MediaProfile, plugins: PluginHost) -> list[CheckResult]:
    """Log in to the incoming and outgoing servers and check the folders, fetching nothing."""
    results: list[CheckResult] = []
    if profile.incoming_allowed:
        try:
            settings = incoming_settings(profile, plugins)
            with incoming_protocol(profile, plugins).open_mailbox(settings) as mailbox:
                mailbox.check()
            results.append(
                CheckResult(
                    "incoming",
                    True,
                    f"logged in to {profile.fetch_protocol} {settings.host or ''} and "
                    f"found folder {settings.folder!r}".replace("  ", " "),
                )
            )
        except ProtocolError as error:
            results.append(CheckResult("incoming", False, str(error)))
    if profile.outgoing_allowed:
        plugin = plugins.protocol(profile.send_protocol)
        if plugin is None:
            results.append(
                CheckResult("outgoing", False, f"Send protocol {profile.send_protocol!r} has no plugin.")
            )
        else:
            try:
                with plugin.open_sender(outgoing_settings(profile, plugin, plugins)):
                    pass
                results.append(
                    CheckResult(
                        "outgoing",
                        True,
                        f"logged in to {profile.send_protocol} "
                        f"{profile.outgoing_host or profile.outgoing_folder}",
                    )
                )
            except SendFailure as error:
                results.append(CheckResult("outgoing", False, error.text))
        if (
            profile.outgoing_folder
            and plugin is not None
            and not plugin.KEEPS_SENT_COPY
            and profile.incoming_allowed
        ):
            try:
                settings = incoming_settings(profile, plugins, folder=profile.outgoing_folder)
                with incoming_protocol(profile, plugins).open_mailbox(settings) as mailbox:
                    mailbox.check()
                results.append(
                    CheckResult("outgoing folder", True, f"found folder {profile.outgoing_folder!r}")
                )
            except ProtocolError as error:
                results.append(CheckResult("outgoing folder", False, str(error)))
    return results
