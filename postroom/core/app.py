"""The application object: one database, its sessions, and the plugins loaded with its switches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.data.db import make_engine, schema_exists, session_factory, upgrade_schema
from postroom.core.data.directory import ensure_default_contact_center
from postroom.core.data.models import PluginSwitch, utcnow
from postroom.core.plugin_host import PluginHost, PluginInfo


class Postroom:
    """What every command and the worker start from: ``Postroom(url)``.

    ``extra_plugins`` registers plugin objects directly (tests and embedding); installed
    plugins arrive through the entry-point group without it.
    """

    def __init__(
        self, database_url: str | None = None, extra_plugins: Iterable[tuple[str, object]] = ()
    ) -> None:
        self.engine = make_engine(database_url)
        self.sessions = session_factory(self.engine)
        self._extra_plugins = list(extra_plugins)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed at the end of the block (rolled back on error).

        The signals of the work done in it are sent after the commit, and not at all on error.
        """
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

    @cached_property
    def plugins(self) -> PluginHost:
        return PluginHost(disabled=self.disabled_plugin_names(), extra=self._extra_plugins)

    def reload_plugins(self) -> PluginHost:
        self.__dict__.pop("plugins", None)
        return self.plugins

    def list_plugins(self) -> list[PluginInfo]:
        return self.plugins.catalogue

    def set_plugin_enabled(self, name: str, enabled: bool) -> None:
        """Switch a plugin on or off for every process using this database."""
        known = self.plugins.names()
        if name not in known:
            raise UserError(f"There is no plugin named {name!r}; 'postroom plugins list' shows them.")
        with self.transaction() as session:
            switch = session.scalar(select(PluginSwitch).where(PluginSwitch.name == name))
            if switch is None:
                switch = PluginSwitch(name=name)
                session.add(switch)
            switch.enabled = enabled
            switch.changed_at = utcnow()
        self.reload_plugins()

    def dispose(self) -> None:
        self.engine.dispose()
