"""dashboard: indexes on tasks.created_at, started_at and completed_at, so the overview's per-minute counts of
the last hour read only that hour's tasks instead of scanning the table on every refresh

Its own branch (label "dashboard") off 0001, so it does not collide with migrations written in parallel;
`ains migrate` upgrades to all heads.

Revision ID: d001
Revises: 0001
Create Date: 2026-12-01

"""

from collections.abc import Sequence

from alembic import op

revision: str = "d001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("dashboard",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tasks_created_at", "tasks", ["created_at"], unique=False)
    op.create_index("ix_tasks_started_at", "tasks", ["started_at"], unique=False)
    op.create_index("ix_tasks_completed_at", "tasks", ["completed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tasks_completed_at", table_name="tasks")
    op.drop_index("ix_tasks_started_at", table_name="tasks")
    op.drop_index("ix_tasks_created_at", table_name="tasks")
