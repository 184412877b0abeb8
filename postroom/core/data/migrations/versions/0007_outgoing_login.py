"""media_profile.outgoing_login, outgoing_username, outgoing_password_encrypted: the outgoing server's own
login (issue 17)

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30 11:40:00.000000

Existing profiles get ``same``: their outgoing server keeps being logged in to with the incoming login,
as before the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("media_profile", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outgoing_login", sa.String(length=16), server_default="same", nullable=False)
        )
        batch_op.add_column(sa.Column("outgoing_username", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("outgoing_password_encrypted", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_profile", schema=None) as batch_op:
        batch_op.drop_column("outgoing_password_encrypted")
        batch_op.drop_column("outgoing_username")
        batch_op.drop_column("outgoing_login")
