"""capability tag covering index: (tag, agent_id) replaces (tag) so routing reads a tag's agents from the index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 08:40:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_capabilities") as batch:
        batch.create_index("ix_agent_capabilities_tag_agent", ["tag", "agent_id"], unique=False)
        batch.drop_index("ix_agent_capabilities_tag")


def downgrade() -> None:
    with op.batch_alter_table("agent_capabilities") as batch:
        batch.create_index("ix_agent_capabilities_tag", ["tag"], unique=False)
        batch.drop_index("ix_agent_capabilities_tag_agent")
