"""message.skipped_recipients: an outgoing reply's recipients left out as unusable (issue 11)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:57:58.779193

No data migration: the address columns of rows stored before (joined by commas) stay as they are,
and ``postroom.core.data.messages.stored_addresses`` reads both that form and the new JSON lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skipped_recipients", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("skipped_recipients")
