"""dispatch queue: waiting tasks in task_waits, fair-share clocks, hand-over reservations flagged on task_attempts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_waits",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("min_trust", sa.Float(), nullable=True),
        sa.Column("excluded_agent_ids", sa.JSON(), nullable=False),
        sa.Column("failed_agent_ids", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("vtag", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("ix_task_waits_tag_order", "task_waits", ["tag", "priority", "vtag", "created"], unique=False)
    op.create_index("ix_task_waits_vtag", "task_waits", ["vtag"], unique=False)
    op.create_table(
        "fair_share_clocks",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("vtag", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    with op.batch_alter_table("task_attempts") as batch_op:
        batch_op.add_column(sa.Column("handover_pending", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_table("fair_share_clocks")
    with op.batch_alter_table("task_attempts") as batch_op:
        batch_op.drop_column("handover_pending")
    op.drop_index("ix_task_waits_vtag", table_name="task_waits")
    op.drop_index("ix_task_waits_tag_order", table_name="task_waits")
    op.drop_table("task_waits")
