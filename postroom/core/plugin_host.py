"""The plugin manager: builtins, external plugins from the ``postroom`` entry-point group, switches.

Callers use :class:`PluginHost` and never touch ``pm.hook`` directly. A plugin is blocked by
``$POSTROOM_DISABLE_PLUGINS`` (comma-separated names) or by ``postroom plugins disable NAME``
(stored in the database and passed in as ``disabled``).

A plugin cannot take postroom down with it. The switches are applied to the entry points' *names*,
so a disabled plugin is never imported. A plugin that fails to import, to register (a registration
hook raises or returns something that is not a plugin class), to validate (a hook name that is
not a postroom hook, a NAME another plugin already provides) or to start is left out and listed
as failed, with its reason and the command that removes it; every other plugin works on. A hook
that raises at run time is re-raised unchanged, marked with the plugin's name (:func:`culprit`),
so that the caller can say which plugin broke a mail.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, cast

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

log = logging.getLogger(__name__)

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

#: The registration hooks and the kind of class each returns.
_KIND_HOOKS = {
    "postroom_register_protocols": "protocol",
    "postroom_register_resolvers": "resolver",
    "postroom_register_retry_policies": "policy",
}

#: Hooks that are not registrations but still say what kind a plugin is (``plugins list``).
_OTHER_KIND_HOOKS = {"postroom_read_bounce": "bounce reader"}

#: The attribute a hook's exception carries: the name of the plugin whose hook raised it.
_CULPRIT = "postroom_plugin"


class PluginConflictError(UserError):
    """Two plugins provide the same NAME (kept for callers; the host now lists the second as failed)."""


def culprit(error: BaseException) -> str | None:
    """The plugin whose hook or class raised ``error``, when the host saw it pass."""
    name = getattr(error, _CULPRIT, None)
    return name if isinstance(name, str) else None


def blame(error: BaseException, plugin: str) -> None:
    """Mark ``error`` as raised by ``plugin`` (the innermost plugin wins)."""
    if culprit(error) is None:
        with contextlib.suppress(AttributeError):  # an exception type with __slots__ stays unnamed
            setattr(error, _CULPRIT, plugin)


@dataclass
class PluginInfo:
    """One plugin as ``plugins list`` shows it.

    ``enabled`` is the operator's switch; ``status`` is what became of it: ``enabled`` (loaded and
    working), ``disabled`` (switched off, never imported) or ``failed`` (``error`` says why and
    ``remedy`` how to remove it).
    """

    name: str
    kind: str
    source: str
    enabled: bool
    provides: list[str] = field(default_factory=list)
    status: str = "enabled"
    error: str | None = None
    remedy: str | None = None
    distribution: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "enabled": self.enabled,
            "status": self.status,
            "provides": self.provides,
            "error": self.error,
            "remedy": self.remedy,
        }


@dataclass
class _Candidate:
    """A plugin found but not yet imported: its name and source are known without loading it."""

    name: str
    source: str
    load: Callable[[], object]
    distribution: str | None = None


def _kind_of(plugin: object) -> str:
    """The kind its registration hooks announce, before they are called (``other`` for none or several)."""
    kinds = {kind for hook, kind in (_KIND_HOOKS | _OTHER_KIND_HOOKS).items() if hasattr(plugin, hook)}
    return kinds.pop() if len(kinds) == 1 else "other"


#: The builtin token providers' modules: each gives a token only to a profile with an OAuth grant.
GRANT_TOKEN_MODULES = frozenset(path for name, path in DEFAULT_PLUGINS if path.startswith("postroom.plugins.oauth."))

def _env_disabled() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _candidates(extra: Iterable[tuple[str, object]]) -> list[_Candidate]:
    """Every builtin, every installed entry point and the extras, none of them imported yet."""
    found = [
        _Candidate(name, "builtin", functools.partial(importlib.import_module, path))
        for name, path in DEFAULT_PLUGINS
    ]
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        source = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
        found.append(
            _Candidate(entry_point.name, source, entry_point.load, dist.name if dist is not None else None)
        )
    found.extend(_Candidate(name, "test", functools.partial(lambda p: p, plugin)) for name, plugin in extra)
    return found


def _said(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _remedy(name: str, distribution: str | None) -> str:
    remedy = f"postroom plugins disable {name}"
    return f"{remedy}, or pip uninstall {distribution}" if distribution else remedy


class PluginHost:
    """The loaded plugins: registries of protocols, resolvers and policies, and typed hook calls.

    ``remembered`` maps a disabled plugin's name to what it provided when it was last loaded
    (``{"resolver": ["newest-open"]}``), so that :meth:`missing` can tell "disabled" from "unknown".
    """

    def __init__(
        self,
        disabled: Iterable[str] = (),
        extra: Iterable[tuple[str, object]] = (),
        remembered: dict[str, dict[str, list[str]]] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager("postroom")
        self.pm.add_hookspecs(hooks)
        self.remembered = remembered or {}
        blocked = set(disabled) | _env_disabled()
        self.catalogue: list[PluginInfo] = []
        self.protocols: dict[str, type[ProtocolPlugin]] = {}
        self.resolvers: dict[str, type[ResolverPlugin]] = {}
        self.policies: dict[str, type[RetryPolicy]] = {}
        #: (kind, NAME) -> the plugin that provides it.
        self.owners: dict[tuple[str, str], str] = {}
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._started = False
        for candidate in _candidates(extra):
            info = PluginInfo(
                candidate.name, "other", candidate.source, candidate.name not in blocked,
                distribution=candidate.distribution,
            )
            if any(p.name == candidate.name for p in self.catalogue):
                info.enabled = False
                self._fail(info, "another plugin is already installed under this name")
                # A switch would name both: only uninstalling tells them apart.
                info.remedy = f"pip uninstall {info.distribution}" if info.distribution else None
                self.catalogue.append(info)
                continue
            self.catalogue.append(info)
            if not info.enabled:
                info.status = "disabled"
                continue
            try:
                plugin = candidate.load()
            except (Exception, SystemExit) as error:  # a broken plugin must not take postroom down
                self._fail(info, f"importing it raised {_said(error)}", error)
                continue
            info.kind = _kind_of(plugin)
            self._admit(info, plugin)

    # --- loading ----------------------------------------------------------------------------------

    def _registries(self) -> dict[str, dict[str, Any]]:
        return {"protocol": self.protocols, "resolver": self.resolvers, "policy": self.policies}

    def _fail(self, info: PluginInfo, reason: str, error: BaseException | None = None) -> None:
        info.status, info.error = "failed", reason
        info.remedy = _remedy(info.name, info.distribution)
        info.provides.clear()
        log.debug("plugin %s failed: %s", info.name, reason, exc_info=error)

    def _admit(self, info: PluginInfo, plugin: object) -> None:
        """Register one plugin, collect its classes and validate them; or leave it out as failed."""
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as error:  # pluggy's PluginValidationError: a hook with a wrong signature
            if self.pm.get_plugin(info.name) is not None:  # pluggy may have added some hooks already
                self.pm.unregister(name=info.name)
            self._fail(info, f"pluggy refused it: {_said(error)}", error)
            return
        unknown = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [] if not c.has_spec())
        if unknown:
            self.pm.unregister(plugin)
            self._fail(
                info,
                f"{', '.join(unknown)} is not a postroom hook (misspelt?); "
                "the hooks are in postroom/core/contract/hooks.py",
            )
            return
        try:
            provided = self._provided(info.name, plugin)
        except (Exception, SystemExit) as error:
            self.pm.unregister(plugin)
            self._fail(info, str(error) if isinstance(error, _Refused) else _said(error), error)
            return
        for kind, classes in provided.items():
            for cls in classes:
                self._registries()[kind][cls.NAME] = cls
                self.owners[(kind, cls.NAME)] = info.name
                info.provides.append(cls.NAME)
        kinds = {kind for kind, classes in provided.items() if classes}
        info.kind = kinds.pop() if len(kinds) == 1 else info.kind
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    # A slot pluggy types as Final; replacing it is how a hook's error gets its plugin's name.
                    impl.function = _blaming(impl.function, info.name)  # type: ignore[misc]

    def _provided(self, name: str, plugin: object) -> dict[str, list[Any]]:
        """The classes the plugin's registration hooks return, checked against those already taken."""
        provided: dict[str, list[Any]] = {}
        for hook_name, kind in _KIND_HOOKS.items():
            impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
            classes: list[Any] = []
            for impl in impls:
                try:
                    returned = impl.function()
                except (Exception, SystemExit) as error:
                    raise _Refused(f"its {hook_name} hook raised {_said(error)}") from error
                for cls in returned or []:
                    cls_name = getattr(cls, "NAME", None)
                    if not isinstance(cls, type) or not isinstance(cls_name, str):
                        raise _Refused(f"its {hook_name} hook returned {cls!r}, which is not a {kind} class")
                    owner = self.owners.get((kind, cls_name))
                    if owner is not None or any(cls_name == c.NAME for c in classes):
                        raise _Refused(
                            f"it provides {kind} {cls_name!r}, which plugin {owner or name!r} provides "
                            "already; two plugins cannot share a NAME"
                        )
                    classes.append(cls)
            provided[kind] = classes
        return provided

    def _eject(self, name: str, reason: str, error: BaseException | None = None) -> None:
        """Take a loaded plugin out again (its start-up failed): its hooks and its classes."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        for (kind, cls_name), owner in list(self.owners.items()):
            if owner == name:
                del self.owners[(kind, cls_name)]
                self._registries()[kind].pop(cls_name, None)
        info = self.info(name)
        if info is not None:
            self._fail(info, reason, error)

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.catalogue if p.name == name), None)

    def plugin(self, name: str) -> object | None:
        """The registered, enabled plugin object called ``name`` (e.g. a token provider), or None."""
        found: object | None = self.pm.get_plugin(name)
        return found

    def names(self) -> list[str]:
        return [p.name for p in self.catalogue]

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.catalogue if p.status == "failed"]

    # --- start-up and shut-down -------------------------------------------------------------------

    def start(self, app: object) -> None:
        """Run every enabled plugin's ``postroom_startup`` hook once; keep what each returns to undo."""
        if self._started:
            return
        self._started = True
        for impl in list(self.pm.hook.postroom_startup.get_hookimpls()):
            try:
                undo = impl.function(*[app for _ in impl.argnames])
            except (Exception, SystemExit) as error:
                log.error("plugin %s: its postroom_startup hook raised %s", impl.plugin_name, _said(error))
                self._eject(impl.plugin_name, f"its postroom_startup hook raised {_said(error)}", error)
                continue
            if undo is not None:
                if not callable(undo):
                    log.error("plugin %s: postroom_startup returned %r, not a callable", impl.plugin_name, undo)
                    continue
                self._undo.append((impl.plugin_name, undo))

    def stop(self) -> None:
        """Undo every start-up, last started first (disable, reload and shut-down all come here)."""
        while self._undo:
            name, undo = self._undo.pop()
            try:
                undo()
            except Exception:
                log.exception("plugin %s: undoing its start-up failed", name)

    # --- "disabled" or "unknown" ------------------------------------------------------------------

    def missing(self, kind: str, name: str, unknown: str | None = None) -> str:
        """One sentence for a ``kind`` NAME that no enabled plugin provides, with the command to fix it.

        ``unknown`` is the sentence for a NAME no disabled plugin provides either (default:
        "Unknown KIND NAME; choose from: ..."); a note on failed plugins is added to it.
        """
        for plugin, provided in self.remembered.items():
            info = self.info(plugin)
            if name in provided.get(kind, []) and info is not None and info.status == "disabled":
                return (
                    f"The {kind} {name!r} comes from plugin {plugin!r}, which is disabled; "
                    f"'postroom plugins enable {plugin}' switches it back on."
                )
        known = ", ".join(sorted(self._registries()[kind])) or "none"
        sentence = unknown or f"Unknown {kind} {name!r}; choose from: {known}."
        failed = [p.name for p in self.failures()]
        if failed:
            sentence += f" (Plugin(s) {', '.join(failed)} failed to load; 'postroom plugins list' says why.)"
        return sentence

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

    def tokens_without_grant(self) -> bool:
        """Whether a ``postroom_get_access_token`` hook may answer for a profile without an OAuth grant.

        The builtin providers (``GRANT_TOKEN_MODULES``) answer only for a profile whose
        ``oauth_grant`` row names them; any other plugin's hook may answer for any profile. A fetch
        cycle asks the hook only when one can answer (``core/inbound/cycle_config.py``).
        """
        return any(
            getattr(impl.plugin, "__name__", None) not in GRANT_TOKEN_MODULES
            for impl in self.pm.hook.postroom_get_access_token.get_hookimpls()
        )

    def access_token(self, profile: MediaProfile, server: str = "incoming") -> str | None:
        """The token a ``postroom_get_access_token`` hook gives for the ``incoming`` or ``outgoing`` server."""
        result: str | None = self.pm.hook.postroom_get_access_token(profile=profile, server=server)
        return result

    def register_commands(self, cli: click.Group) -> None:
        for impl in self.pm.hook.postroom_register_commands.get_hookimpls():
            try:
                impl.function(cli)
            except Exception as error:  # one plugin's broken command must not hide the others
                self._eject(impl.plugin_name, f"its postroom_register_commands hook raised {_said(error)}", error)


class _Refused(Exception):
    """Why a plugin's registration was refused, as ``plugins list`` words it."""


def _blaming(function: Callable[..., Any], plugin: str) -> Callable[..., Any]:
    """``function`` (a hook implementation), marking what it raises with ``plugin``'s name."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            blame(error, plugin)
            raise

    return call
