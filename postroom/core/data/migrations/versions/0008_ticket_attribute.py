"""ticket_attribute: plugins' own indexed values on tickets (issue 12)

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-30 11:45:00.000000

The category → retry policy table needs no schema change: it is stored as configuration (the
``retryPolicies`` parameter row and profile property), and failure rows already name their policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_attribute",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plugin", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_attribute_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_attribute")),
        sa.UniqueConstraint(
            "ticket_id", "plugin", "name", name=op.f("uq_ticket_attribute_ticket_id_plugin_name")
        ),
    )
    with op.batch_alter_table("ticket_attribute", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_attribute_plugin_name_value"), ["plugin", "name", "value"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_attribute", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_attribute_plugin_name_value"))
    op.drop_table("ticket_attribute")
