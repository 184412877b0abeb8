"""message.content_digest: a digest of an inbound mail's content, which with its Message-ID makes a duplicate

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:38:19.341535

Rows stored before stay empty: the pipeline computes their digest from the raw bytes the first
time a new mail's Message-ID collides with one of them, and records it then.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("content_digest")
