"""web_user, web_session, web_user_queue, audit_log, sign_in_failure: the operator's console (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "web_user",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_user")),
        sa.UniqueConstraint("name", name=op.f("uq_web_user_name")),
    )
    op.create_table(
        "web_session",
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("web_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["web_user_id"],
            ["web_user.id"],
            name=op.f("fk_web_session_web_user_id_web_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_digest", name=op.f("pk_web_session")),
    )
    op.create_index(op.f("ix_web_session_web_user_id"), "web_session", ["web_user_id"], unique=False)
    op.create_table(
        "web_user_queue",
        sa.Column("web_user_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["web_user_id"],
            ["web_user.id"],
            name=op.f("fk_web_user_queue_web_user_id_web_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queue.id"], name=op.f("fk_web_user_queue_queue_id_queue"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("web_user_id", "queue_id", name=op.f("pk_web_user_queue")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "sign_in_failure",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failure")),
    )
    op.create_index(op.f("ix_sign_in_failure_name_at"), "sign_in_failure", ["name", "at"], unique=False)
    op.create_index(op.f("ix_sign_in_failure_client_at"), "sign_in_failure", ["client", "at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_failure_client_at"), table_name="sign_in_failure")
    op.drop_index(op.f("ix_sign_in_failure_name_at"), table_name="sign_in_failure")
    op.drop_table("sign_in_failure")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("web_user_queue")
    op.drop_index(op.f("ix_web_session_web_user_id"), table_name="web_session")
    op.drop_table("web_session")
    op.drop_table("web_user")
