"""the planner's gate reads the planned actions not yet gated through a partial index

* ``ix_actions_ungated``: ``actions (tenant_id, debtor_id)`` where ``status = 'planned'``
  and ``verdict IS NULL``: the gate of a pass selects the contacts it just planned without
  scanning the tenant's history of actions.

Revision ID: 0034
Revises: 0041
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNGATED = "status = 'planned' AND verdict IS NULL"


def upgrade() -> None:
    op.create_index("ix_actions_ungated", "actions", ["tenant_id", "debtor_id"],
                    postgresql_where=sa.text(UNGATED), sqlite_where=sa.text(UNGATED))


def downgrade() -> None:
    op.drop_index("ix_actions_ungated", table_name="actions")
