"""attempt output: task_attempts.output holds an agent answer too large for a workflow history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 08:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_attempts") as batch:
        batch.add_column(sa.Column("output", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_column("output")
