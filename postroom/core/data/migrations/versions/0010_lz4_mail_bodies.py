"""message_raw.raw and the message bodies compressed with lz4 on PostgreSQL (issue 18)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:20:00.000000

PostgreSQL compresses a large value with pglz unless told otherwise, and pglz is slow: storing the
raw bytes of a fetch batch cost the server 0.5-0.7 ms of CPU per 19 KiB mail, about a third of
``postroom fetch``'s whole time per mail, for 7 % less space. lz4 stores the same batch 3-4 times
faster at nearly the same size. Only new values are written with lz4; stored ones stay readable as
they are. A server built without lz4 (or SQLite, which does not compress) is left alone.

Revises 0008, the head of this branch; the lead re-chains it after 0009 on merge.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The columns that hold a mail's bulk: its raw bytes and its decoded bodies.
COLUMNS = (("message_raw", "raw"), ("message", "text_body"), ("message", "html_body"))


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(
            sa.text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
            )
        ).scalar()
    )


def upgrade() -> None:
    if _lz4_available():
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if _lz4_available():
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION default")
