"""Alembic environment. Migrations are applied through core.platform.migrate, which passes a live connection."""

from __future__ import annotations

from alembic import context

from ains.models.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `ains migrate` (core.platform.migrate), which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
