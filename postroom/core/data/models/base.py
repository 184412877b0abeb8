"""The declarative base, column shapes shared by every table, and the state enums."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, mapped_column

# Named constraints, so that Alembic migrations and error messages can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware.

    SQLite keeps no zone, PostgreSQL's ``timestamp`` neither; storing UTC everywhere and
    attaching the zone on the way out keeps comparisons right on both.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("postroom stores only timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


int_pk = Annotated[int, mapped_column(Integer, primary_key=True, autoincrement=True)]
big_pk = Annotated[int, mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)]
name_str = Annotated[str, mapped_column(String(255))]
timestamp = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow)]


class Base(DeclarativeBase):
    """The base of every postroom model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {
        str: String(255),
        datetime: UTCDateTime,
    }


class ProfileStatus(StrEnum):
    """Whether a profile's last fetch or connection check worked."""

    OK = "ok"
    ERROR = "error"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    """Where a stored mail stands in the pipeline."""

    #: Stored but not yet routed (no rule matched, or routing has not run yet).
    UNROUTED = "unrouted"
    #: Could not be parsed or broke a plugin: kept raw with the reason.
    QUARANTINED = "quarantined"
    #: Routed and attached to a ticket.
    TICKETED = "ticketed"
    #: Held by an inbound filter plugin.
    HELD = "held"
    #: An outgoing reply.
    OUTGOING = "outgoing"


class TicketState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    MERGED = "merged"


class SendState(StrEnum):
    """The states of ``s_message_send_info``."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY_SCHEDULED = "retry-scheduled"
    FAILED = "failed"


class LedgerOutcome(StrEnum):
    """What became of a mail the fetch ledger records."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
