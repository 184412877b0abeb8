"""web_ticket_read: what a console account has seen of a ticket, for the inbox's "unread" (issue 13)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 15:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "web_ticket_read",
        sa.Column("web_user_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", _big_id, nullable=False),
        sa.Column("seen_activity_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["web_user_id"],
            ["web_user.id"],
            name=op.f("fk_web_ticket_read_web_user_id_web_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_web_ticket_read_ticket_id_ticket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("web_user_id", "ticket_id", name=op.f("pk_web_ticket_read")),
    )


def downgrade() -> None:
    op.drop_table("web_ticket_read")
