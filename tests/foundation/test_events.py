"""Signals about stored data go out once the work is kept, and never for work that was undone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.data.directory import add_campaign
from postroom.core.data.models import Campaign


def _collect() -> tuple[list[dict[str, Any]], Any]:
    heard: list[dict[str, Any]] = []

    def receive(_sender: object, **kwargs: Any) -> None:
        heard.append(kwargs)

    return heard, receive


def test_held_signals_wait_for_the_block_and_nested_ones_for_the_outermost() -> None:
    heard, receive = _collect()
    events.ticket_updated.connect(receive)
    try:
        with events.held():
            with events.held():
                events.emit(events.ticket_updated, None, ticket_id=1, change="closed")
            assert heard == []  # the inner block ended well: handed to the outer one
            events.emit(events.ticket_updated, None, ticket_id=2, change="closed")
            assert heard == []
        assert [k["ticket_id"] for k in heard] == [1, 2]
        events.emit(events.ticket_updated, None, ticket_id=3, change="closed")  # outside: at once
        assert [k["ticket_id"] for k in heard] == [1, 2, 3]
    finally:
        events.ticket_updated.disconnect(receive)


def test_signals_of_a_block_that_raises_are_dropped_and_the_outer_ones_kept() -> None:
    heard, receive = _collect()
    events.ticket_updated.connect(receive)
    try:
        with events.held():
            events.emit(events.ticket_updated, None, ticket_id=1, change="closed")
            with pytest.raises(RuntimeError), events.held():
                events.emit(events.ticket_updated, None, ticket_id=2, change="closed")
                raise RuntimeError("rolled back")
        assert [k["ticket_id"] for k in heard] == [1]
    finally:
        events.ticket_updated.disconnect(receive)


def test_a_transactions_signals_go_out_after_its_commit_and_not_after_a_rollback(app: Postroom) -> None:
    seen: list[bool] = []

    def receive(_sender: object, **kwargs: Any) -> None:
        with app.sessions() as other:  # another session: sees only committed rows
            seen.append(other.scalar(select(Campaign).where(Campaign.name == "Signals")) is not None)

    events.ticket_updated.connect(receive)
    try:
        with app.transaction() as session:
            add_campaign(session, 1, "Signals")
            events.emit(events.ticket_updated, None, ticket_id=1, change="closed")
        assert seen == [True]
        with pytest.raises(RuntimeError), app.transaction() as session:
            events.emit(events.ticket_updated, None, ticket_id=2, change="closed")
            raise RuntimeError("undone")
        assert seen == [True]
    finally:
        events.ticket_updated.disconnect(receive)
