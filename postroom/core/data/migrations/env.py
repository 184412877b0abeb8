"""Alembic environment: runs migrations on the connection postroom hands over (see db.upgrade_schema)."""

from __future__ import annotations

from alembic import context

from postroom.core.data.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - postroom always passes a connection
    raise RuntimeError("Run migrations through 'postroom init', which passes the database connection.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
