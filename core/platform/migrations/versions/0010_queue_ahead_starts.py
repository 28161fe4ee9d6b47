"""dispatch queue: task_waits.start_on_handover marks a task whose run was started delayed while it waits
(a batch that joined the queue ahead of its runs), so its hand-over starts the run by SignalWithStart

Revision ID: 0010
Revises: a001
Create Date: 2026-12-07 05:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "a001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_waits") as batch_op:
        batch_op.add_column(sa.Column("start_on_handover", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("task_waits") as batch_op:
        batch_op.drop_column("start_on_handover")
