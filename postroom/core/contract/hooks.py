"""The whole plugin contract: every hook postroom calls, grouped by the phase it belongs to.

A plugin is a module or object with functions marked ``@postroom.hookimpl`` whose names are
the hooks below. Builtins and external plugins (entry-point group ``postroom``) use the same
hooks. ``firstresult`` hooks stop at the first non-None result; the others collect every
non-None result in a list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from sqlalchemy.orm import Session

    from postroom.core.contract.bounces import BounceReport
    from postroom.core.contract.drafts import OutgoingDraft
    from postroom.core.contract.mail import ParsedMail
    from postroom.core.contract.protocols import ProtocolPlugin, SendFailure
    from postroom.core.contract.resolvers import ResolverPlugin
    from postroom.core.contract.retry import ErrorCategory, RetryPolicy
    from postroom.core.contract.routing import InboundVerdict, RouteChoice
    from postroom.core.data.models import MediaProfile, Ticket

hookspec = pluggy.HookspecMarker("postroom")
hookimpl = pluggy.HookimplMarker("postroom")


# --- registration: what plugin classes exist --------------------------------------------------


@hookspec
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    """Return the protocol classes this plugin provides.

    Each class has a unique ``NAME`` (``imap``, ``smtp``, …) which profiles name as their
    fetch or send protocol. A NAME given by two plugins is an error naming both.

    :return: a list of :class:`postroom.ProtocolPlugin` subclasses.
    """
    raise NotImplementedError


@hookspec
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    """Return the ticket resolver classes this plugin provides.

    Each class has a unique ``NAME`` (as typed in ``--resolver``) and a human ``LABEL``.

    :return: a list of :class:`postroom.ResolverPlugin` subclasses.
    """
    raise NotImplementedError


@hookspec
def postroom_register_retry_policies() -> list[type[RetryPolicy]]:
    """Return the retry policy classes this plugin provides.

    ``NAME`` is the policy's configuration code (``"progressive retry"``), by which the category →
    policy table chooses it (``postroom retry set-policy``; installing a policy selects it nowhere).
    A policy implements ``decide(context)`` and is told the category and the failure
    (docs/plugins/retry-policies.md).

    :return: a list of :class:`postroom.RetryPolicy` subclasses.
    """
    raise NotImplementedError


@hookspec
def postroom_register_commands(cli: click.Group) -> None:
    """Add commands to the ``postroom`` command line (``cli.add_command(...)``).

    Called when a command line names a command postroom itself does not have, or lists them all,
    with the plugins enabled in the database that command line uses.

    :param cli: a click group whose commands become top-level ``postroom`` commands.
    :return: nothing; the result is ignored.
    """


# --- inbound: after a mail is parsed, before it lands on a ticket ----------------------------


@hookspec
def postroom_inbound_filter(message: ParsedMail, profile: MediaProfile) -> InboundVerdict | None:
    """Inspect a parsed inbound mail before it is routed; every plugin's verdict is applied.

    A verdict may add tags, mark the mail as an auto-reply (so nothing automatic answers it),
    or hold it (stored, not routed, with the reason).

    :param message: the parsed mail.
    :param profile: the profile it was fetched through.
    :return: an :class:`postroom.core.contract.routing.InboundVerdict`, or None for no opinion.
    """


@hookspec(firstresult=True)
def postroom_route_message(
    message: ParsedMail, profile: MediaProfile, session: Session
) -> RouteChoice | None:
    """Choose the campaign and queue for an inbound mail. Stops at the first non-None result.

    The builtin uses the profile's routing rules. Returning None from every plugin leaves the
    mail held as unrouted (stored; re-routed when a rule changes).

    :param message: the parsed mail.
    :param profile: the profile it was fetched through.
    :param session: the database session of the fetch transaction (read only).
    :return: a :class:`postroom.core.contract.routing.RouteChoice`, or None to pass.
    """


@hookspec
def postroom_read_bounce(message: ParsedMail) -> BounceReport | None:
    """Read a failure mail in a format this plugin knows; every reader is asked and the reports merged.

    Asked about every routed inbound mail, so answer None quickly for mail that is not yours. A
    report naming no recipient still says the mail is a bounce of this format. The core fills in
    each recipient's reason class and hard/soft when left out, adds the original Message-IDs it
    finds itself, and reads a bounce forwarded inside another mail by asking again about the inner one.

    :param message: the parsed mail (``message.raw`` holds its bytes).
    :return: a :class:`postroom.BounceReport`, or None: not a bounce this reader knows.
    """


# --- outbound: composing and sending replies --------------------------------------------------


@hookspec
def postroom_compose_outgoing(draft: OutgoingDraft, ticket: Ticket, profile: MediaProfile) -> None:
    """Adjust an outgoing reply before it is queued: every plugin sees the draft in turn.

    Change the draft in place (headers, signature, bodies); the return value is ignored.

    :param draft: the reply being composed.
    :param ticket: the ticket it answers.
    :param profile: the outgoing profile it will be sent through.
    """


@hookspec(firstresult=True)
def postroom_classify_send_error(error: SendFailure, profile: MediaProfile) -> ErrorCategory | None:
    """Map a failed send to an error category. Stops at the first non-None result.

    The builtin reads the RFC 3463 enhanced status code; a plugin can recognise a provider's
    own replies first.

    :param error: what the server or connection said.
    :param profile: the profile the send went through.
    :return: an :class:`postroom.core.contract.retry.ErrorCategory`, or None to let the next plugin decide.
    """


@hookspec(firstresult=True)
def postroom_get_access_token(profile: MediaProfile, server: str) -> str | None:
    """Return an OAuth2 access token for this profile's servers (Gmail, Microsoft 365).

    Called each time a connection is opened, so a plugin can hand out a fresh token (and cache
    it while valid). IMAP, POP3 and SMTP then log in with SASL XOAUTH2, EWS with the bearer
    token over https (an application's token acts on the mailbox by impersonation); the
    profile's user name names the mailbox. The token is a secret: never logged or shown.

    ``server`` says which login is asked for: ``"incoming"`` (fetching, and keeping sent
    copies) or ``"outgoing"`` (sending). The outgoing server asks only when the profile's
    ``outgoing_login`` is ``same`` (a token for both servers, as before) or ``token`` (where
    a token is required; the user is ``outgoing_username``, else ``username``); ``password``
    and ``none`` never ask. A hookimpl that does not care may leave ``server`` out of its
    parameters (pluggy passes only the ones it names).

    :param profile: the profile logging in.
    :param server: ``"incoming"`` or ``"outgoing"``.
    :return: the bearer token, or None to log in with the stored password.
    """


# --- life cycle: a running postroom -----------------------------------------------------------


@hookspec
def postroom_startup(app: Any) -> Callable[[], None] | None:
    """Start what the plugin needs while postroom runs; return how to undo it.

    Called once for each *enabled* plugin when a postroom process starts working (every command,
    ``postroom run``) and again after each ``postroom reload`` that re-reads the plugin switches. The
    callable returned is called when the plugin is disabled, reloaded or the process ends, so a
    signal receiver connected here (``postroom.events.message_stored.connect(receiver)``) stops
    receiving once the plugin is switched off. A hook that raises leaves its plugin out, listed as
    failed. See docs/plugins/signals.md.

    :param app: the :class:`postroom.core.app.Postroom` application (``app.transaction()`` gives a
        session). Typed ``Any`` here because the contract imports no implementation.
    :return: a callable without arguments that undoes the start-up, or None.
    """
