"""agents updated_at index: a routing snapshot's refresh reads only the agents changed since its last look

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 12:00:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_agents_updated_at", "agents", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_agents_updated_at", table_name="agents")
