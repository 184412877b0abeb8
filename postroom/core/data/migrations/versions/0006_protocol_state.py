"""protocol_state: what a profile's fetch protocol keeps between cycles, e.g. a Graph delta link (issue 17)

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-30 11:45:00

A new table only; no existing row changes. A profile without a row fetches as before (a protocol
that lists incrementally starts with a full listing, which the fetch ledger de-duplicates).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "protocol_state",
        sa.Column("media_profile_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=64), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_profile_id"],
            ["media_profile.id"],
            name=op.f("fk_protocol_state_media_profile_id_media_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("media_profile_id", "protocol", name=op.f("pk_protocol_state")),
    )


def downgrade() -> None:
    op.drop_table("protocol_state")
