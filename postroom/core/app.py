"""The application object: one database, its sessions, and the plugins loaded with its switches."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from importlib import metadata

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.data.db import make_engine, schema_exists, session_factory, upgrade_schema
from postroom.core.data.directory import ensure_default_contact_center
from postroom.core.data.models import EngineSetting, PluginSwitch, utcnow
from postroom.core.plugin_host import ENTRY_POINT_GROUP, PluginHost, PluginInfo

#: EngineSetting name prefix: what a plugin provided when it was disabled (``{kind: [NAME, ...]}``).
PROVIDES_PREFIX = "plugin-provides:"


class Postroom:
    """What every command and the worker start from: ``Postroom(url)``.

    ``extra_plugins`` registers plugin objects directly (tests and embedding); installed
    plugins arrive through the entry-point group without it. ``start_plugins`` runs the enabled
    plugins' ``postroom_startup`` hooks when the plugins are loaded (the command line and the
    worker ask for it; a library user calls :meth:`start_plugins`); :meth:`dispose` undoes them.
    """

    def __init__(
        self,
        database_url: str | None = None,
        extra_plugins: Iterable[tuple[str, object]] = (),
        start_plugins: bool = False,
    ) -> None:
        self.engine = make_engine(database_url)
        self.sessions = session_factory(self.engine)
        self._extra_plugins = list(extra_plugins)
        self._start = start_plugins
        self._loading = False

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed at the end of the block (rolled back on error).

        The signals of the work done in it are sent after the commit, and not at all on error.
        Where plugins are to be started, they are loaded first, so that their receivers hear them.
        """
        if self._start and not self._loading and "plugins" not in self.__dict__ and _has_external_plugins():
            self.plugins  # noqa: B018 - loading starts them
        with events.held(), self.sessions() as session, session.begin():
            yield session

    def init(self) -> None:
        """Create or upgrade the schema and the default contact centre."""
        upgrade_schema(self.engine)
        with self.transaction() as session:
            ensure_default_contact_center(session)

    def require_schema(self) -> None:
        if not schema_exists(self.engine):
            raise UserError(
                f"The database {self.engine.url!r} has no postroom schema yet; run 'postroom init'."
            )

    def disabled_plugin_names(self) -> set[str]:
        try:
            with self.sessions() as session:
                return set(session.scalars(select(PluginSwitch.name).where(PluginSwitch.enabled.is_(False))))
        except (OperationalError, ProgrammingError):
            return set()  # no schema yet: nothing switched off

    def remembered_provides(self) -> dict[str, dict[str, list[str]]]:
        """What each disabled plugin provided when it was switched off (see :meth:`PluginHost.missing`)."""
        try:
            with self.sessions() as session:
                rows = session.scalars(
                    select(EngineSetting).where(EngineSetting.name.startswith(PROVIDES_PREFIX))
                )
                return {row.name.removeprefix(PROVIDES_PREFIX): json.loads(row.value) for row in rows}
        except (OperationalError, ProgrammingError, ValueError):
            return {}

    def _load_plugins(self, disabled: set[str]) -> PluginHost:
        return PluginHost(disabled=disabled, extra=self._extra_plugins, remembered=self.remembered_provides())

    @cached_property
    def plugins(self) -> PluginHost:
        """The plugins, loaded with the switches read first (a disabled plugin is never imported)."""
        self._loading = True
        try:
            host = self._load_plugins(self.disabled_plugin_names())
            if self._start:
                self.__dict__["plugins"] = host  # a start-up hook may use app.plugins already
                host.start(self)
        finally:
            self._loading = False
        return host

    def start_plugins(self) -> PluginHost:
        """Run the enabled plugins' start-up hooks (now, and again after every reload)."""
        self._start = True
        host = self.plugins
        host.start(self)
        return host

    def reload_plugins(self) -> PluginHost:
        """Undo the plugins' start-ups, read the switches again and load (and start) them anew."""
        old = self.__dict__.pop("plugins", None)
        if old is not None:
            old.stop()
        return self.plugins

    def list_plugins(self) -> list[PluginInfo]:
        return self.plugins.catalogue

    def set_plugin_enabled(
        self, name: str, enabled: bool, *, also: Callable[[Session], None] | None = None
    ) -> None:
        """Switch a plugin on or off for every process using this database.

        Enabling imports and registers the plugin first, and refuses (switch unchanged) if that
        fails; disabling remembers what the plugin provided, so that a profile naming one of its
        classes is told "disabled", not "unknown". ``also`` runs in the switch's transaction (the
        console records the change in the audit log there).
        """
        host = self.plugins
        info = host.info(name)
        if info is None:
            raise UserError(f"There is no plugin named {name!r}; 'postroom plugins list' shows them.")
        provides: dict[str, list[str]] = {}
        for (kind, provided), owner in host.owners.items():
            if owner == name:
                provides.setdefault(kind, []).append(provided)
        if enabled:
            trial = self._load_plugins(self.disabled_plugin_names() - {name})
            tried = trial.info(name)
            if tried is not None and tried.status == "failed":
                raise UserError(f"Plugin {name!r} cannot be enabled, it stays disabled: {tried.error}.")
        with self.transaction() as session:
            switch = session.scalar(select(PluginSwitch).where(PluginSwitch.name == name))
            if switch is None:
                switch = PluginSwitch(name=name)
                session.add(switch)
            switch.enabled = enabled
            switch.changed_at = utcnow()
            if not enabled and provides and len(PROVIDES_PREFIX + name) <= 64:
                key = PROVIDES_PREFIX + name
                setting = session.get(EngineSetting, key) or EngineSetting(name=key, value="{}")
                setting.value = json.dumps(provides)
                session.add(setting)
            if also is not None:
                also(session)
        self.reload_plugins()

    def dispose(self) -> None:
        """Undo the plugins' start-ups and close the database connections."""
        host = self.__dict__.get("plugins")
        if host is not None:
            host.stop()
        self.engine.dispose()


def _has_external_plugins() -> bool:
    """Whether any plugin is installed (the builtins have no start-up hooks to run)."""
    return bool(metadata.entry_points(group=ENTRY_POINT_GROUP))
