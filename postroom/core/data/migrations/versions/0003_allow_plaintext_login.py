"""media_profile.allow_plaintext_login: a profile's consent to log in without STARTTLS (issue 11)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:38:35.967490
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing profiles get false: after the upgrade they log in only over TLS, as a new one does.
    with op.batch_alter_table("media_profile", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("allow_plaintext_login", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("media_profile", schema=None) as batch_op:
        batch_op.drop_column("allow_plaintext_login")
