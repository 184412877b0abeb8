"""oauth_grant: a profile's OAuth2 grant and its encrypted tokens (issue 17)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 11:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime()
    op.create_table(
        "oauth_grant",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("media_profile_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("client_id", sa.String(length=1024), nullable=True),
        sa.Column("client_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_expires_at", when, nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=True),
        sa.Column("authority", sa.String(length=1024), nullable=True),
        sa.Column("ca_file", sa.String(length=1024), nullable=True),
        sa.Column("last_refresh_at", when, nullable=True),
        sa.Column("refresh_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.ForeignKeyConstraint(
            ["media_profile_id"],
            ["media_profile.id"],
            name=op.f("fk_oauth_grant_media_profile_id_media_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_grant")),
        sa.UniqueConstraint("media_profile_id", name=op.f("uq_oauth_grant_media_profile_id")),
    )


def downgrade() -> None:
    op.drop_table("oauth_grant")
