"""The plugin manager: builtins, external plugins from the ``postroom`` entry-point group, switches.

Callers use :class:`PluginHost` and never touch ``pm.hook`` directly. A plugin is blocked by
``$POSTROOM_DISABLE_PLUGINS`` (comma-separated names) or by ``postroom plugins disable NAME``
(stored in the database and passed in as ``disabled``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pluggy

from postroom.core.contract import hooks
from postroom.core.contract.errors import UserError

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

ENTRY_POINT_GROUP = "postroom"
DISABLE_ENV = "POSTROOM_DISABLE_PLUGINS"

#: The builtin plugins, registered in this order under the names on the left.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("imap", "postroom.plugins.protocols.imap"),
    ("pop3", "postroom.plugins.protocols.pop3"),
    ("smtp", "postroom.plugins.protocols.smtp"),
    ("ews", "postroom.plugins.protocols.ews"),
    ("graph", "postroom.plugins.protocols.graph"),
    ("maildir", "postroom.plugins.protocols.maildir"),
    ("default-retry", "postroom.plugins.policies.default"),
    ("rate-limit-retry", "postroom.plugins.policies.rate_limit"),
    ("progressive-retry", "postroom.plugins.policies.progressive"),
    ("no-retry", "postroom.plugins.policies.no_retry"),
    ("send-error-classifier", "postroom.plugins.policies.classifier"),
    ("customer-resolvers", "postroom.plugins.resolvers.customer"),
    ("subject-resolvers", "postroom.plugins.resolvers.subject"),
    ("case-id-resolver", "postroom.plugins.resolvers.case_id"),
    ("observer-resolver", "postroom.plugins.resolvers.observer"),
    ("routing-rules", "postroom.plugins.routing_rules"),
    ("auto-reply-filter", "postroom.plugins.auto_reply_filter"),
    ("signature", "postroom.plugins.signature"),
    ("microsoft", "postroom.plugins.oauth.microsoft"),
    ("google", "postroom.plugins.oauth.google"),
    ("bounce-dsn", "postroom.plugins.bounces.dsn"),
    ("bounce-flufl", "postroom.plugins.bounces.flufl"),
    ("bounce-text", "postroom.plugins.bounces.text"),
)

_KIND_HOOKS = {
    "postroom_register_protocols": "protocol",
    "postroom_register_resolvers": "resolver",
    "postroom_register_retry_policies": "policy",
    "postroom_read_bounce": "bounce reader",
}


class PluginConflictError(UserError):
    """Two plugins provide the same NAME."""


@dataclass
class PluginInfo:
    """One plugin as ``plugins list`` shows it."""

    name: str
    kind: str
    source: str
    enabled: bool
    provides: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "enabled": self.enabled,
            "provides": self.provides,
        }


def _kind_of(module: object) -> str:
    kinds = {kind for hook, kind in _KIND_HOOKS.items() if hasattr(module, hook)}
    return kinds.pop() if len(kinds) == 1 else "other"


def _env_disabled() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _discover() -> list[tuple[str, object, str]]:
    """(name, plugin object, source) for every builtin and every installed entry point."""
    found: list[tuple[str, object, str]] = []
    for name, module_path in DEFAULT_PLUGINS:
        found.append((name, importlib.import_module(module_path), "builtin"))
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        source = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken third-party plugin must not take postroom down
            raise UserError(f"Plugin {entry_point.name!r} ({source}) failed to load: {error}") from error
        found.append((entry_point.name, plugin, source))
    return found


_Named = TypeVar("_Named")


class PluginHost:
    """The loaded plugins: registries of protocols, resolvers and policies, and typed hook calls."""

    def __init__(self, disabled: Iterable[str] = (), extra: Iterable[tuple[str, object]] = ()) -> None:
        self.pm = pluggy.PluginManager("postroom")
        self.pm.add_hookspecs(hooks)
        blocked = set(disabled) | _env_disabled()
        self.catalogue: list[PluginInfo] = []
        sources = [*_discover(), *((name, plugin, "test") for name, plugin in extra)]
        for name, plugin, source in sources:
            enabled = name not in blocked
            if enabled:
                self.pm.register(plugin, name=name)
            self.catalogue.append(PluginInfo(name, _kind_of(plugin), source, enabled))
        self.pm.check_pending()
        self.protocols: dict[str, type[ProtocolPlugin]] = self._collect("postroom_register_protocols")
        self.resolvers: dict[str, type[ResolverPlugin]] = self._collect("postroom_register_resolvers")
        self.policies: dict[str, type[RetryPolicy]] = self._collect("postroom_register_retry_policies")

    def _collect(self, hook_name: str) -> dict[str, Any]:
        registry: dict[str, Any] = {}
        owners: dict[str, str] = {}
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            for cls in impl.function() or []:
                name = cls.NAME
                if name in registry:
                    raise PluginConflictError(
                        f"The name {name!r} is provided by both plugin {owners[name]!r} "
                        f"and plugin {impl.plugin_name!r}; disable one of them."
                    )
                registry[name] = cls
                owners[name] = impl.plugin_name
        info = {p.name: p for p in self.catalogue}
        for name, owner in owners.items():
            info[owner].provides.append(name)
        return registry

    def plugin(self, name: str) -> object | None:
        """The registered, enabled plugin object called ``name`` (e.g. a token provider), or None."""
        found: object | None = self.pm.get_plugin(name)
        return found

    def names(self) -> list[str]:
        return [p.name for p in self.catalogue]

    # --- typed hook calls ---------------------------------------------------------------------

    def protocol(self, name: str) -> ProtocolPlugin | None:
        cls = self.protocols.get(name)
        return cls() if cls is not None else None

    def resolver(self, name: str) -> ResolverPlugin | None:
        cls = self.resolvers.get(name)
        return cls() if cls is not None else None

    def policy(self, name: str) -> RetryPolicy | None:
        cls = self.policies.get(name)
        return cls() if cls is not None else None

    def classify_send_error(self, error: SendFailure, profile: MediaProfile) -> ErrorCategory | None:
        result: ErrorCategory | None = self.pm.hook.postroom_classify_send_error(error=error, profile=profile)
        return result

    def inbound_verdicts(self, message: ParsedMail, profile: MediaProfile) -> list[InboundVerdict]:
        results: list[InboundVerdict] = self.pm.hook.postroom_inbound_filter(message=message, profile=profile)
        return results

    def route_message(
        self, message: ParsedMail, profile: MediaProfile, session: Session
    ) -> RouteChoice | None:
        result: RouteChoice | None = self.pm.hook.postroom_route_message(
            message=message, profile=profile, session=session
        )
        return result

    def compose_outgoing(self, draft: OutgoingDraft, ticket: Ticket, profile: MediaProfile) -> None:
        self.pm.hook.postroom_compose_outgoing(draft=draft, ticket=ticket, profile=profile)

    def read_bounce(self, message: ParsedMail) -> list[tuple[str, BounceReport]]:
        """Every bounce reader's report on ``message``, with the name of the plugin that gave it."""
        reports: list[tuple[str, BounceReport]] = []
        for impl in self.pm.hook.postroom_read_bounce.get_hookimpls():  # builtins first
            report = cast("BounceReport | None", impl.function(message=message))
            if report is not None:
                reports.append((impl.plugin_name, report))
        return reports

    def access_token(self, profile: MediaProfile, server: str = "incoming") -> str | None:
        """The token a ``postroom_get_access_token`` hook gives for the ``incoming`` or ``outgoing`` server."""
        result: str | None = self.pm.hook.postroom_get_access_token(profile=profile, server=server)
        return result

    def register_commands(self, cli: click.Group) -> None:
        self.pm.hook.postroom_register_commands(cli=cli)
