"""The seed's configuration tables: ``ic_configuration_parameter`` rows and per-profile retry variables.

Both are read fresh from the database on every use, so rows an operator types in SQL take effect
at once; ``postroom reload`` bumps a generation number that tells running workers to drop caches.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.contract.retry import RETRY_RANGES, RetrySettings
from postroom.core.data import retry_policies
from postroom.core.data.models import (
    EngineSetting,
    IcConfigurationParameter,
    MediaProfile,
    MediaProfileConfiguration,
)
from postroom.core.data.profile_properties import profile_properties
from postroom.core.data.validation import Range, check_address

FAILURE_MAIL = "failureMailConfiguration"
PROFILE_MAPPING = "mediaProfileMapping"
KNOWN_PARAMETERS = {
    name.lower(): name for name in (FAILURE_MAIL, PROFILE_MAPPING, retry_policies.RETRY_POLICIES)
}
GENERATION = "config_generation"
RETRY_KEYS = {field: seed_key for field, (seed_key, _low, _high) in RETRY_RANGES.items()}


def canonical_name(name: str) -> str:
    """The seed's spelling of a known parameter name; unknown names are refused."""
    try:
        return KNOWN_PARAMETERS[name.lower()]
    except KeyError:
        raise UserError(
            f"Unknown configuration parameter {name!r}; known: {', '.join(sorted(KNOWN_PARAMETERS.values()))}."
        ) from None


def _check_value(name: str, value: str) -> str:
    if name == FAILURE_MAIL:
        return check_address(value, "failure mail address")
    if name == retry_policies.RETRY_POLICIES:
        return retry_policies.check_document(value)
    try:
        mapping = json.loads(value)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
        str(k).strip().isdigit() and str(v).strip().isdigit() for k, v in mapping.items()
    ):
        raise UserError(
            'mediaProfileMapping must be a JSON object of profile ids, e.g. {"3": "4"} '
            "(incoming profile 3 replies through profile 4)."
        )
    return value


def _rows(session: Session, contact_center_id: int, name: str) -> list[IcConfigurationParameter]:
    return list(
        session.scalars(
            select(IcConfigurationParameter)
            .where(
                IcConfigurationParameter.contact_center_id == contact_center_id,
                func.lower(IcConfigurationParameter.name) == name.lower(),
            )
            .order_by(IcConfigurationParameter.id)
        )
    )


def get_values(session: Session, contact_center_id: int, name: str) -> list[str]:
    return [row.value for row in _rows(session, contact_center_id, name)]


def list_parameters(session: Session, contact_center_id: int) -> list[IcConfigurationParameter]:
    return list(
        session.scalars(
            select(IcConfigurationParameter)
            .where(IcConfigurationParameter.contact_center_id == contact_center_id)
            .order_by(IcConfigurationParameter.name, IcConfigurationParameter.id)
        )
    )


def parameters_as_json(session: Session, contact_center_id: int) -> list[dict[str, Any]]:
    """Every parameter row of a contact centre, as ``config list --json`` prints them."""
    return [
        {"id": row.id, "name": row.name, "value": row.value}
        for row in list_parameters(session, contact_center_id)
    ]


def add_value(session: Session, contact_center_id: int, name: str, value: str) -> IcConfigurationParameter:
    canonical = canonical_name(name)
    row = IcConfigurationParameter(
        contact_center_id=contact_center_id, name=canonical, value=_check_value(canonical, value)
    )
    session.add(row)
    session.flush()
    return row


def set_value(session: Session, contact_center_id: int, name: str, value: str) -> None:
    """Replace every row of ``name`` with one row holding ``value``."""
    remove_values(session, contact_center_id, name)
    add_value(session, contact_center_id, name, value)


def remove_values(session: Session, contact_center_id: int, name: str, value: str | None = None) -> int:
    canonical = canonical_name(name)
    rows = [r for r in _rows(session, contact_center_id, canonical) if value is None or r.value == value]
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


def failure_mail_addresses(session: Session, contact_center_id: int) -> set[str]:
    """The configured mailer-daemon addresses of a contact centre, lower-cased."""
    return {v.strip().lower() for v in get_values(session, contact_center_id, FAILURE_MAIL) if v.strip()}


def profile_mapping(session: Session, contact_center_id: int) -> dict[int, int]:
    """Incoming profile id → outgoing profile id, merged over every ``mediaProfileMapping`` row."""
    merged: dict[int, int] = {}
    for value in get_values(session, contact_center_id, PROFILE_MAPPING):
        try:
            mapping = json.loads(value)
        except ValueError:
            continue
        if isinstance(mapping, dict):
            for source, target in mapping.items():
                if str(source).strip().isdigit() and str(target).strip().isdigit():
                    merged[int(source)] = int(target)
    return merged


def retry_settings(session: Session | Connection, profile_id: int) -> RetrySettings:
    rows = session.scalars(
        select(MediaProfileConfiguration.media_profile_properties)
        .where(MediaProfileConfiguration.media_profile_id == profile_id)
        .order_by(MediaProfileConfiguration.id)
    )
    return RetrySettings.from_json_rows(list(rows))


def set_retry_settings(session: Session, profile: MediaProfile, **values: int | None) -> RetrySettings:
    """Write the given retry variables into the profile's configuration row (created if missing)."""
    for key, value in values.items():
        if value is not None:
            _seed_key, low, high = RETRY_RANGES[key]
            unit = "" if key == "max_retry_count" else " (seconds)"
            Range(f"{key.replace('_', ' ')}{unit}", low, high).check(value)
    row, properties = profile_properties(session, profile)
    lowered = {k.lower(): k for k in properties}
    for key, value in values.items():
        if value is None:
            continue
        seed_key = RETRY_KEYS[key]
        properties.pop(lowered.get(seed_key.lower(), seed_key), None)
        properties[seed_key] = str(value)
    row.media_profile_properties = json.dumps(properties)
    session.flush()
    return retry_settings(session, profile.id)


_GENERATION = select(EngineSetting.value).where(EngineSetting.name == GENERATION)


def config_generation(session: Session | Connection) -> int:
    """The configuration generation (the worker asks every half second: one column, no ORM object).

    The statement is built once: building it cost the scheduler more CPU than running it.
    """
    value = session.scalar(_GENERATION)
    return int(value) if value is not None else 0


def reload_configuration(session: Session) -> int:
    """Bump the configuration generation; running workers re-read profiles, rules and retry settings."""
    row = session.get(EngineSetting, GENERATION)
    if row is None:
        row = EngineSetting(name=GENERATION, value="0")
        session.add(row)
    generation = int(row.value) + 1
    row.value = str(generation)
    session.flush()
    events.emit(events.config_reloaded, reload_configuration, generation=generation)
    return generation
