"""dispatch queue: task_waits.expires, when a task queued ahead of its run (no run exists until its hand-over)
has waited its queue timeout; the dispatch reconciler then starts its run, which fails it as no_agent_available

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 08:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_waits") as batch_op:
        batch_op.add_column(sa.Column("expires", sa.Float(), nullable=True))
        batch_op.create_index("ix_task_waits_expires", ["expires"])


def downgrade() -> None:
    with op.batch_alter_table("task_waits") as batch_op:
        batch_op.drop_index("ix_task_waits_expires")
        batch_op.drop_column("expires")
