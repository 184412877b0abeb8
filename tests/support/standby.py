"""What the standby store's tests share: a fixed clock, profiles in a given state, stores PostgreSQL can find."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from postroom.core.app import Postroom
from postroom.core.data import configuration
from postroom.core.data.models import MediaProfile
from postroom.core.worker.standby import Standby
from postroom.core.worker.standby_store import StandbyStore
from postroom.core.worker.standby_switch import Handover, standby_protocols
from tests.support.profiles import empty_maildir_profile

NOW = datetime(2031, 3, 4, 10, 0, 0, tzinfo=UTC)
LEASE = timedelta(seconds=90)
TAG = "postroom-standby-test"
#: The backends of the stores opened on ``tagged`` URLs (in this test session's database alone).
STORES_BACKENDS = "FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"


def tagged(url: str) -> str:
    """The URL with an application name on PostgreSQL, so that a test can find the store's backends."""
    return f"{url}?application_name={TAG}" if url.startswith("postgresql") else url


def standby_profile(app: Postroom, folder: Path, name: str, **values: Any) -> int:
    """A maildir profile (on an empty Maildir under ``folder``), its columns then set to ``values`` through the ORM."""
    profile_id = empty_maildir_profile(app, folder / name, name)
    if values:
        with app.transaction() as session:
            profile = session.get(MediaProfile, profile_id)
            assert profile is not None
            for column, value in values.items():
                setattr(profile, column, value)
    return profile_id


def in_process_standby(
    app: Postroom, store: StandbyStore, url: str, *, worker: str, threads: int, lease: float, tick: float
) -> Standby:
    """A standby in this process, as the engine hands over to it after holding nothing (``engine_standby.py``).

    The standby refuses a plugin whose import brought SQLAlchemy in; in a test or bench process it
    is loaded already, so the plugins the handover names are imported for it beforehand.
    """
    with app.sessions() as session:
        generation = configuration.config_generation(session)
    handover = Handover(
        worker=worker,
        database_url=url,
        argv=["-m", "postroom", "run"],
        lease=lease,
        threads=threads,
        tick=tick,
        idle_renew=1500,
        standby_after=300,
        verbose=False,
        log_format="text",
        generation=generation,
        protocols=standby_protocols(app.plugins),
        disabled=sorted(app.disabled_plugin_names()),
    )
    standby = Standby(handover, store)
    for name, target in handover.protocols.items():
        module_name, _, class_name = target.partition(":")
        standby.plugins.classes[name] = getattr(importlib.import_module(module_name), class_name)
    return standby
