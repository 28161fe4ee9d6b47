"""composition: task dependencies, templates, chains and plans

Its own branch (label "composition") off 0003, so it does not collide with migrations written in parallel;
`ains migrate` upgrades to all heads.

Revision ID: c001
Revises: 0003
Create Date: 2026-11-23

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c001"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = ("composition",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("depends_on_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "depends_on_id"),
    )
    with op.batch_alter_table("task_dependencies", schema=None) as batch_op:
        batch_op.create_index("ix_task_dependencies_depends_on", ["depends_on_id"], unique=False)

    op.create_table(
        "task_templates",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("task_type", sa.String(length=100), nullable=False),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("times_used", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "name", name="uq_task_templates_client_name"),
    )
    op.create_table(
        "compositions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "kind", "idempotency_key", name="uq_compositions_client_idempotency"),
    )
    with op.batch_alter_table("compositions", schema=None) as batch_op:
        batch_op.create_index("ix_compositions_client_created", ["client_id", "created_at"], unique=False)

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("step_name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("template_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_tasks_parent_id"), ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_parent_id"))
        batch_op.drop_column("template_id")
        batch_op.drop_column("step_name")
        batch_op.drop_column("parent_id")
    with op.batch_alter_table("compositions", schema=None) as batch_op:
        batch_op.drop_index("ix_compositions_client_created")
    op.drop_table("compositions")
    op.drop_table("task_templates")
    with op.batch_alter_table("task_dependencies", schema=None) as batch_op:
        batch_op.drop_index("ix_task_dependencies_depends_on")
    op.drop_table("task_dependencies")
