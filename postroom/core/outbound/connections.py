"""The connections of one outbox run: one sender per profile, and the mailbox that keeps the sent copies.

A profile's server is connected to once per run and the connection reused for all its due
replies; a server that cannot be reached is not asked again in the same run, so a dead server
costs one timeout, not one per reply.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import NO_PROTOCOL, Mailbox, ProtocolError, Sender, SendFailure
from postroom.core.data.models import MediaProfile
from postroom.core.plugin_host import PluginHost
from postroom.core.servers import incoming_protocol, incoming_settings, outgoing_settings

log = logging.getLogger(__name__)


class NoProvider(SendFailure):
    """The profile has no usable send protocol plugin (or no longer sends): category "no such provider"."""

    def __init__(self, text: str) -> None:
        super().__init__(text, kind="protocol")


class Connections:
    """Senders and sent-copy mailboxes by profile id, opened on first use and closed together."""

    def __init__(self, plugins: PluginHost) -> None:
        self.plugins = plugins
        self._senders: dict[int, Sender] = {}
        self._refused: dict[int, SendFailure] = {}
        self._mailboxes: dict[int, Mailbox | None] = {}
        self._copy_failed: set[int] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- sending ----------------------------------------------------------------------------------

    def sender(self, profile: MediaProfile | None) -> Sender:
        """The open sender of ``profile``; raises the :class:`SendFailure` its opening ended in."""
        if profile is None:
            raise NoProvider("The outgoing profile of this reply no longer exists.")
        if profile.id in self._refused:
            raise self._refused[profile.id]
        sender = self._senders.get(profile.id)
        if sender is None:
            try:
                sender = self._open_sender(profile)
            except SendFailure as failure:
                self._refused[profile.id] = failure
                raise
            self._senders[profile.id] = sender
        return sender

    def _open_sender(self, profile: MediaProfile) -> Sender:
        if profile.deleted_at is not None:
            raise NoProvider(f"Profile {profile.name!r} was deleted; its queued replies cannot be sent.")
        if not profile.can_send:
            raise NoProvider(f"Profile {profile.name!r} does not allow outgoing mail.")
        plugin = self.plugins.protocol(profile.send_protocol)
        if plugin is None or not plugin.CAN_SEND:
            raise NoProvider(
                f"Send protocol {profile.send_protocol!r} of profile {profile.name!r} "
                "has no installed, enabled plugin."
            )
        return plugin.open_sender(outgoing_settings(profile, plugin, self.plugins))

    def drop(self, profile_id: int) -> None:
        """Close a profile's sender after a broken connection; the next reply opens a fresh one."""
        sender = self._senders.pop(profile_id, None)
        if sender is not None:
            _close_quietly(sender)

    # --- sent copies ------------------------------------------------------------------------------

    def store_sent_copy(self, profile: MediaProfile, raw: bytes) -> bool:
        """Append a sent mail to the profile's outgoing folder when the send protocol keeps no copy.

        False when the copy failed; that is logged and never turns the sent mail into a failed one.
        """
        plugin = self.plugins.protocol(profile.send_protocol)
        folder = profile.outgoing_folder
        if plugin is None or plugin.KEEPS_SENT_COPY or not folder:
            return True
        if profile.id in self._copy_failed:
            return False  # failed earlier in this run: not tried again until the next
        try:
            mailbox = self._mailbox(profile)
            if mailbox is not None:
                mailbox.append(raw, folder)
            return True
        except (ProtocolError, UserError) as error:
            log.warning(
                "profile %s: the sent copy could not be stored in %r: %s", profile.name, folder, error
            )
        except Exception:
            log.exception("profile %s: storing the sent copy in %r failed", profile.name, folder)
        self._copy_failed.add(profile.id)
        mailbox = self._mailboxes.pop(profile.id, None)
        if mailbox is not None:
            _close_quietly(mailbox)
        return False

    def _mailbox(self, profile: MediaProfile) -> Mailbox | None:
        if profile.id not in self._mailboxes:
            if profile.fetch_protocol == NO_PROTOCOL:
                log.warning(
                    "profile %s has outgoing folder %r but no fetch protocol to store sent copies through",
                    profile.name,
                    profile.outgoing_folder,
                )
                self._mailboxes[profile.id] = None
            else:
                # The incoming folder is opened (it exists); the copy goes to the outgoing folder.
                settings = incoming_settings(profile, self.plugins)
                self._mailboxes[profile.id] = incoming_protocol(profile, self.plugins).open_mailbox(settings)
        return self._mailboxes[profile.id]

    def close(self) -> None:
        for sender in self._senders.values():
            _close_quietly(sender)
        for mailbox in self._mailboxes.values():
            if mailbox is not None:
                _close_quietly(mailbox)
        self._senders.clear()
        self._mailboxes.clear()
        self._refused.clear()
        self._copy_failed.clear()


def _close_quietly(connection: Sender | Mailbox) -> None:
    try:
        connection.close()
    except Exception:
        log.debug("closing a connection failed", exc_info=True)
