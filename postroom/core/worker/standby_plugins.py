"""The standby's protocol plugins: the classes the handover names, imported once, and per profile its settings.

The standby (``standby.py``) fetches only with the plugins the engine named in the handover, those
that wait without the database stack (``WAITS_IN_STANDBY``); one whose import brings SQLAlchemy in
after all is refused, and its profiles left to the engine. A profile's connection settings are
built from its row as the engine's ``cycle_config.CycleConfigs`` builds them, and kept while the
row's configuration columns are unchanged: an empty cycle every few seconds would otherwise
decrypt the password and build the settings anew each time.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from typing import Any

from postroom.core.contract.protocols import ConnectionSettings, ProtocolPlugin
from postroom.core.servers import password_settings
from postroom.core.worker.standby_store import CONFIGURATION_COLUMNS, StandbyProfile

log = logging.getLogger("postroom.worker")


class StandbyPlugins:
    """The plugin classes named in the handover (``protocols``: name -> "module:class"), and settings per profile."""

    def __init__(self, protocols: dict[str, str]) -> None:
        self.protocols = protocols
        #: Protocol name -> its plugin class, imported once (None: the engine fetches its profiles).
        self.classes: dict[str, type[ProtocolPlugin] | None] = {}
        self._built: dict[int, tuple[tuple[Any, ...], type[ProtocolPlugin], ConnectionSettings]] = {}
        self._lock = threading.Lock()
        #: How many times settings were built (for tests and benches; a kept one adds nothing).
        self.builds = 0

    def plugin_class(self, name: str) -> type[ProtocolPlugin] | None:
        """The plugin class the handover names for ``name``, imported once; None if the engine must fetch."""
        if name in self.classes:
            return self.classes[name]
        target = self.protocols.get(name)
        found: type[ProtocolPlugin] | None = None
        if target is not None:
            module_name, _, class_name = target.partition(":")
            try:
                found = getattr(importlib.import_module(module_name), class_name)
            except Exception as error:
                log.warning("standby: protocol %s (%s) cannot be imported: %s", name, target, error)
            if "sqlalchemy" in sys.modules:
                log.warning(
                    "standby: protocol %s's module %s imports SQLAlchemy though it says WAITS_IN_STANDBY; "
                    "its profiles are fetched by the engine",
                    name,
                    module_name,
                )
                found = None
        self.classes[name] = found
        return found

    def settings(
        self, row: StandbyProfile, plugin_class: type[ProtocolPlugin]
    ) -> tuple[ProtocolPlugin, ConnectionSettings]:
        """A plugin and its settings (without ``sync_state``), kept per profile while its configuration is unchanged.

        The key, as ``CycleConfigs``'s: the row's configuration columns (the password as stored
        among them) and its grant, so ``profile modify`` or an edit in SQL rebuilds them.
        """
        key = (*(getattr(row, name) for name in CONFIGURATION_COLUMNS), row.grant_id)
        with self._lock:
            built = self._built.get(row.id)
        if built is not None and built[0] == key and built[1] is plugin_class:
            return plugin_class(), built[2]
        plugin = plugin_class()
        settings = password_settings(row, plugin)
        with self._lock:
            self._built[row.id] = (key, plugin_class, settings)
            self.builds += 1
        return plugin, settings
