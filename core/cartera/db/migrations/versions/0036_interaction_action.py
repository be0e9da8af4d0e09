"""interactions.action_id: at most one interaction per strategy action; due actions index

* ``interactions.action_id``: the strategy action that queued the interaction (until now
  only in ``trigger.action_id``), filled from ``trigger`` for the existing rows (the first
  interaction of each action);
* ``uq_interactions_action``: a partial unique index on it, so an action is dispatched at
  most once whatever runs at the same time (dispatch inserts ``ON CONFLICT DO NOTHING``);
* ``ix_actions_due``: the due actions (planned or deferred) by tenant and planned instant,
  the order dispatch claims them in a batch at a time (without it every batch sorted all
  the tenant's due actions).

Revision ID: 0036
Revises: 0040
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SET = sa.text("action_id IS NOT NULL")
DUE = sa.text("status IN ('planned', 'deferred')")


def upgrade() -> None:
    op.add_column("interactions", sa.Column("action_id", _ID, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        found = """("trigger" ->> 'action_id')::bigint"""
        strategy = f"""("trigger" ->> 'source') = 'strategy' AND {found} IS NOT NULL"""
    else:
        found = """CAST(json_extract("trigger", '$.action_id') AS INTEGER)"""
        strategy = f"""json_extract("trigger", '$.source') = 'strategy' AND {found} IS NOT NULL"""
    op.execute(f"UPDATE interactions SET action_id = {found} WHERE id IN ("
               f"SELECT min(id) FROM interactions WHERE {strategy} GROUP BY {found})")
    op.create_index("uq_interactions_action", "interactions", ["action_id"], unique=True,
                    postgresql_where=SET, sqlite_where=SET)
    op.create_index("ix_actions_due", "actions", ["tenant_id", "planned_at", "id"],
                    postgresql_where=DUE, sqlite_where=DUE)


def downgrade() -> None:
    op.drop_index("ix_actions_due", table_name="actions")
    op.drop_index("uq_interactions_action", table_name="interactions")
    op.drop_column("interactions", "action_id")
