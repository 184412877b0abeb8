"""The category → retry policy table: the seed's map by default, overridable per contact centre and per profile.

It is configuration and lives where configuration lives: the contact centre's choices in the
``ic_configuration_parameter`` row ``retryPolicies``, a profile's under the key ``retryPolicies`` of
its ``media_profile_configuration`` properties (beside ``maxRetryCount``). Both hold a JSON object
of category → policy name, e.g. ``{"mailbox error": "patient retry"}``; the table in force for a
profile is the seed's :data:`~postroom.core.contract.retry.CATEGORY_POLICIES`, overlaid by the
contact centre's choices, overlaid by the profile's. Choosing a plugin's policy for a category
replaces the builtin there without disabling it: the builtin keeps deciding everywhere else.

Writes check categories and policy names (against the installed, enabled policies the caller
passes); reads skip what they cannot use (an unknown category typed in SQL) so a bad row never
stops the outbox. A name no installed policy has is kept: its failures are recorded as
"not installed: no retry" until the plugin is back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import UserError
from postroom.core.contract.retry import CATEGORY_POLICIES, ErrorCategory
from postroom.core.data.models import IcConfigurationParameter, MediaProfile, MediaProfileConfiguration
from postroom.core.data.profile_properties import profile_properties

log = logging.getLogger(__name__)

#: The parameter name (contact centre) and the properties key (profile) holding the choices.
RETRY_POLICIES = "retryPolicies"

Source = Literal["default", "contact centre", "profile"]


@dataclass(frozen=True)
class PolicyChoice:
    """One row of the table in force: a category, its policy, and which level chose it."""

    category: ErrorCategory
    policy: str
    source: Source

    def as_json(self) -> dict[str, Any]:
        return {"category": self.category.value, "policy": self.policy, "source": self.source}


def check_category(name: str) -> ErrorCategory:
    """The category called ``name`` (case-insensitive); anything else is refused with the list."""
    for category in ErrorCategory:
        if category.value == name.strip().lower():
            return category
    known = ", ".join(repr(c.value) for c in ErrorCategory)
    raise UserError(f"Unknown error category {name!r}; the categories are {known}.")


def check_policy(name: str, installed: Collection[str]) -> str:
    """``name`` if an installed, enabled policy has it; anything else is refused with the list."""
    if name in installed:
        return name
    known = ", ".join(repr(p) for p in sorted(installed))
    raise UserError(f"No installed and enabled retry policy is called {name!r}; the policies are {known}.")


def check_document(text: str) -> str:
    """A stored choice typed whole (``config set retryPolicies '{...}'``): a JSON object of known categories.

    Policy names are checked by ``postroom retry set-policy``, which knows the installed policies;
    here a name is only required to be a non-empty string.
    """
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise UserError(
            "retryPolicies must be a JSON object of error category to policy name, e.g. "
            '{"mailbox error": "no retry"}; "postroom retry set-policy" sets one at a time.'
        )
    for key in value:
        check_category(str(key))
    return text


def _parse(text: str | None, where: str) -> dict[ErrorCategory, str]:
    """The usable choices of one stored JSON object; a bad row or entry is skipped with a log line."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("the %s of %s is not JSON; ignored", RETRY_POLICIES, where)
        return {}
    if isinstance(value, str):  # a profile's choices are a JSON object inside the properties
        return _parse(value, where)
    if not isinstance(value, dict):
        log.warning("the %s of %s is not a JSON object; ignored", RETRY_POLICIES, where)
        return {}
    choices: dict[ErrorCategory, str] = {}
    for key, policy in value.items():
        try:
            category = ErrorCategory(str(key).strip().lower())
        except ValueError:
            log.warning("the %s of %s names an unknown category %r; ignored", RETRY_POLICIES, where, key)
            continue
        if isinstance(policy, str) and policy.strip():
            choices[category] = policy.strip()
    return choices


def _center_row(session: Session | Connection, contact_center_id: int) -> IcConfigurationParameter | None:
    return session.execute(
        select(IcConfigurationParameter)
        .where(
            IcConfigurationParameter.contact_center_id == contact_center_id,
            func.lower(IcConfigurationParameter.name) == RETRY_POLICIES.lower(),
        )
        .order_by(IcConfigurationParameter.id.desc())
        .limit(1)
    ).scalar()


def center_choices(session: Session | Connection, contact_center_id: int) -> dict[ErrorCategory, str]:
    """The contact centre's own choices (categories it sets), without the defaults."""
    rows = session.execute(
        select(IcConfigurationParameter.value)
        .where(
            IcConfigurationParameter.contact_center_id == contact_center_id,
            func.lower(IcConfigurationParameter.name) == RETRY_POLICIES.lower(),
        )
        .order_by(IcConfigurationParameter.id)
    ).scalars()
    merged: dict[ErrorCategory, str] = {}
    for value in rows:
        merged.update(_parse(value, f"contact centre {contact_center_id}"))
    return merged


def profile_choices(session: Session | Connection, profile_id: int) -> dict[ErrorCategory, str]:
    """A profile's own choices, merged over its configuration rows (later rows win)."""
    merged: dict[ErrorCategory, str] = {}
    rows = session.execute(
        select(MediaProfileConfiguration.media_profile_properties)
        .where(MediaProfileConfiguration.media_profile_id == profile_id)
        .order_by(MediaProfileConfiguration.id)
    ).scalars()
    for text in rows:
        try:
            properties = json.loads(text) if text else {}
        except ValueError:
            continue
        if isinstance(properties, dict):
            for key, value in properties.items():
                if str(key).lower() == RETRY_POLICIES.lower():
                    raw = value if isinstance(value, str) else json.dumps(value)
                    merged.update(_parse(raw, f"profile {profile_id}"))
    return merged


def table(
    session: Session | Connection, contact_center_id: int, profile_id: int | None = None
) -> list[PolicyChoice]:
    """The table in force (for a profile, or for the contact centre), each row with its source."""
    center = center_choices(session, contact_center_id)
    own = profile_choices(session, profile_id) if profile_id is not None else {}
    rows: list[PolicyChoice] = []
    for category in ErrorCategory:
        if category in own:
            rows.append(PolicyChoice(category, own[category], "profile"))
        elif category in center:
            rows.append(PolicyChoice(category, center[category], "contact centre"))
        else:
            rows.append(PolicyChoice(category, CATEGORY_POLICIES[category], "default"))
    return rows


def policy_names_for_profile(
    connection: Session | Connection, profile_id: int
) -> Mapping[ErrorCategory, str]:
    """The category → policy map the outbox decides a profile's failures with."""
    center_id = connection.execute(
        select(MediaProfile.contact_center_id).where(MediaProfile.id == profile_id)
    ).scalar()
    if center_id is None:
        return CATEGORY_POLICIES
    return {row.category: row.policy for row in table(connection, center_id, profile_id)}


def _store(
    session: Session, contact_center_id: int, profile: MediaProfile | None, choices: dict[ErrorCategory, str]
) -> None:
    document = {category.value: policy for category, policy in choices.items()}
    if profile is None:
        row = _center_row(session, contact_center_id)
        for extra in session.scalars(
            select(IcConfigurationParameter).where(
                IcConfigurationParameter.contact_center_id == contact_center_id,
                func.lower(IcConfigurationParameter.name) == RETRY_POLICIES.lower(),
            )
        ):
            if extra is not row:
                session.delete(extra)
        if not document:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(
                IcConfigurationParameter(
                    contact_center_id=contact_center_id, name=RETRY_POLICIES, value=json.dumps(document)
                )
            )
        else:
            row.value = json.dumps(document)
    else:
        config, properties = profile_properties(session, profile)
        for key in [k for k in properties if k.lower() == RETRY_POLICIES.lower()]:
            del properties[key]
        if document:
            properties[RETRY_POLICIES] = document
        config.media_profile_properties = json.dumps(properties)
    session.flush()


def set_policy(
    session: Session,
    contact_center_id: int,
    category: str,
    policy: str,
    installed: Collection[str],
    profile: MediaProfile | None = None,
) -> PolicyChoice:
    """Choose ``policy`` for ``category``, for the contact centre or for one profile."""
    chosen_category = check_category(category)
    chosen_policy = check_policy(policy, installed)
    current = (
        center_choices(session, contact_center_id)
        if profile is None
        else profile_choices(session, profile.id)
    )
    current[chosen_category] = chosen_policy
    _store(session, contact_center_id, profile, current)
    return PolicyChoice(chosen_category, chosen_policy, "contact centre" if profile is None else "profile")


def reset(
    session: Session, contact_center_id: int, category: str | None = None, profile: MediaProfile | None = None
) -> int:
    """Drop the choice of ``category`` (every choice, if None) at one level; returns how many were dropped."""
    current = (
        center_choices(session, contact_center_id)
        if profile is None
        else profile_choices(session, profile.id)
    )
    if category is None:
        dropped = len(current)
        current = {}
    else:
        dropped = int(current.pop(check_category(category), None) is not None)
    _store(session, contact_center_id, profile, current)
    return dropped


def replace_policy(
    session: Session,
    contact_center_id: int,
    old: str,
    new: str,
    installed: Collection[str],
    profile: MediaProfile | None = None,
) -> list[ErrorCategory]:
    """Choose ``new`` for every category ``old`` decides at this level: a builtin replaced, not disabled.

    Only the categories whose policy in force (for the profile, or the contact centre) is ``old``
    change, and only at the given level; ``old`` keeps deciding wherever else it is chosen.
    """
    chosen_policy = check_policy(new, installed)
    in_force = table(session, contact_center_id, profile.id if profile is not None else None)
    categories = [row.category for row in in_force if row.policy == old]
    if not categories:
        used = ", ".join(repr(p) for p in sorted({row.policy for row in in_force}))
        raise UserError(f"No category is decided by {old!r} here; the policies in use are {used}.")
    current = (
        center_choices(session, contact_center_id)
        if profile is None
        else profile_choices(session, profile.id)
    )
    current.update(dict.fromkeys(categories, chosen_policy))
    _store(session, contact_center_id, profile, current)
    return categories
