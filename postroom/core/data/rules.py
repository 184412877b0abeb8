"""Routing rules: a profile's ordered conditions that send a mail to a campaign and queue."""

from __future__ import annotations

import fnmatch
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.models import Campaign, MediaProfile, Queue, RoutingRule
from postroom.core.data.validation import RULE_PRIORITY, check_single_line


def _pattern(value: str | None, field: str) -> str | None:
    if value is None or not value.strip():
        return None
    return check_single_line(value.strip(), f"{field} pattern")


def add_rule(
    session: Session,
    profile: MediaProfile,
    campaign: Campaign,
    queue: Queue,
    *,
    priority: int = 100,
    from_pattern: str | None = None,
    to_pattern: str | None = None,
    subject_pattern: str | None = None,
) -> RoutingRule:
    """A new enabled rule of ``profile``; lower priority numbers are tried first."""
    RULE_PRIORITY.check(priority)
    if queue.campaign_id != campaign.id:
        raise UserError(f"Queue {queue.name!r} does not belong to campaign {campaign.name!r}.")
    rule = RoutingRule(
        media_profile_id=profile.id,
        campaign_id=campaign.id,
        queue_id=queue.id,
        priority=priority,
        enabled=True,
        from_pattern=_pattern(from_pattern, "from"),
        to_pattern=_pattern(to_pattern, "to"),
        subject_pattern=_pattern(subject_pattern, "subject"),
    )
    session.add(rule)
    session.flush()
    return rule


def modify_rule(
    session: Session,
    contact_center_id: int,
    rule_id: int,
    campaign: Campaign,
    queue: Queue,
    *,
    priority: int,
    from_pattern: str | None = None,
    to_pattern: str | None = None,
    subject_pattern: str | None = None,
) -> RoutingRule:
    """Change where a rule sends mail and what it matches (its profile stays); checked as :func:`add_rule`."""
    rule = get_rule(session, contact_center_id, rule_id)
    RULE_PRIORITY.check(priority)
    if queue.campaign_id != campaign.id:
        raise UserError(f"Queue {queue.name!r} does not belong to campaign {campaign.name!r}.")
    rule.campaign_id, rule.queue_id, rule.priority = campaign.id, queue.id, priority
    rule.from_pattern = _pattern(from_pattern, "from")
    rule.to_pattern = _pattern(to_pattern, "to")
    rule.subject_pattern = _pattern(subject_pattern, "subject")
    session.flush()
    return rule


def move_rule(session: Session, contact_center_id: int, rule_id: int, step: int) -> list[RoutingRule]:
    """Move a rule ``step`` places earlier (negative) or later among its profile's rules; returns them in order.

    The profile's priorities are kept as a set and handed out again in the new order, so the other
    rules keep their numbers; when two rules share a number (an order by id), they are renumbered
    10, 20, 30, ... first. A rule already first (or last) stays where it is.
    """
    rule = get_rule(session, contact_center_id, rule_id)
    ordered = list(
        session.scalars(
            select(RoutingRule)
            .where(RoutingRule.media_profile_id == rule.media_profile_id)
            .order_by(RoutingRule.priority, RoutingRule.id)
        )
    )
    priorities = [r.priority for r in ordered]
    if len(set(priorities)) != len(priorities):
        priorities = [10 * (index + 1) for index in range(len(ordered))]
    index = ordered.index(rule)
    target = max(0, min(len(ordered) - 1, index + step))
    ordered.insert(target, ordered.pop(index))
    for moved, priority in zip(ordered, priorities, strict=True):
        RULE_PRIORITY.check(priority)
        moved.priority = priority
    session.flush()
    return ordered


def get_rule(session: Session, contact_center_id: int, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    profile = session.get(MediaProfile, rule.media_profile_id) if rule else None
    if rule is None or profile is None or profile.contact_center_id != contact_center_id:
        raise NotFoundError(f"There is no routing rule {rule_id}.")
    return rule


def delete_rule(session: Session, contact_center_id: int, rule_id: int) -> None:
    """Delete a rule; mail it routed stays where it went."""
    session.delete(get_rule(session, contact_center_id, rule_id))


def enabled_rules(session: Session, profile_id: int) -> list[RoutingRule]:
    """A profile's enabled rules in the order they are tried (served by the rule index).

    Read once per session: a fetch session routes a whole cycle with the rules it started with,
    and rule changes re-route held mail in a session of their own.
    """
    key = ("postroom.enabled_rules", profile_id)
    cached: list[RoutingRule] | None = session.info.get(key)
    if cached is None:
        cached = list(
            session.scalars(
                select(RoutingRule)
                .where(RoutingRule.media_profile_id == profile_id, RoutingRule.enabled.is_(True))
                .order_by(RoutingRule.priority, RoutingRule.id)
            )
        )
        session.info[key] = cached
    return cached


def _matches(pattern: str | None, values: list[str]) -> bool:
    if pattern is None:
        return True
    lowered = pattern.lower()
    return any(fnmatch.fnmatchcase(v.lower(), lowered) for v in values)


def rule_matches(rule: RoutingRule, sender: str | None, recipients: list[str], subject: str) -> bool:
    """Shell-style patterns, case-insensitive; a missing pattern matches everything."""
    return (
        _matches(rule.from_pattern, [sender or ""])
        and _matches(rule.to_pattern, recipients or [""])
        and _matches(rule.subject_pattern, [subject])
    )


def set_rule_enabled(session: Session, contact_center_id: int, rule_id: int, enabled: bool) -> MediaProfile:
    """Enable or disable a rule; returns its profile (whose held mail a rule just enabled may route)."""
    rule = get_rule(session, contact_center_id, rule_id)
    rule.enabled = enabled
    profile = session.get(MediaProfile, rule.media_profile_id)
    assert profile is not None  # get_rule found it
    return profile


def rules_as_json(session: Session, contact_center_id: int) -> list[dict[str, Any]]:
    """A contact centre's rules as ``rule list --json`` prints them: with profile, campaign and queue names."""
    rows = session.execute(
        select(RoutingRule, MediaProfile.name, Campaign.name, Queue.name)
        .join(MediaProfile, RoutingRule.media_profile_id == MediaProfile.id)
        .outerjoin(Campaign, RoutingRule.campaign_id == Campaign.id)
        .outerjoin(Queue, RoutingRule.queue_id == Queue.id)
        .where(MediaProfile.contact_center_id == contact_center_id)
        .order_by(RoutingRule.media_profile_id, RoutingRule.priority, RoutingRule.id)
    )
    return [
        {
            "id": rule.id,
            "profile": profile,
            "campaign": campaign,
            "queue": queue,
            "priority": rule.priority,
            "enabled": rule.enabled,
            "from": rule.from_pattern,
            "to": rule.to_pattern,
            "subject": rule.subject_pattern,
        }
        for rule, profile, campaign, queue in rows
    ]
