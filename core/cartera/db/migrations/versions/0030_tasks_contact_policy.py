"""strategy engine, second part: collector tasks and the tenant's contact policy

* ``tasks``: collector tasks (queue, priority, due instant, open/done/cancelled), one at
  most per strategy action (unique ``action_id``).
* ``strategy_settings``: ``min_gap_hours`` and ``weekly_cap`` (the contact policy beyond
  one contact a day) and ``channel_prices`` (price hints for simulation).

Revision ID: 0030
Revises: 0024
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0030"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("action_id", _ID, sa.ForeignKey(
            "actions.id", name=op.f("fk_tasks_action_id_actions"), ondelete="SET NULL"),
            nullable=True),
        sa.Column("strategy_id", _ID, nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("due_at", Instant, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.Column("closed_at", Instant, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_tasks_tenant_id_debtors"), ondelete="CASCADE"),
        sa.CheckConstraint("status IN ('open', 'done', 'cancelled')",
                           name=op.f("ck_tasks_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("action_id", name=op.f("uq_tasks_action_id")),
    )
    op.create_index("ix_tasks_tenant_queue", "tasks", ["tenant_id", "status", "queue", "due_at"])
    op.create_index("ix_tasks_tenant_debtor", "tasks", ["tenant_id", "debtor_id"])
    with op.batch_alter_table("strategy_settings") as batch:
        batch.add_column(sa.Column("min_gap_hours", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("weekly_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("channel_prices", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("strategy_settings") as batch:
        batch.drop_column("channel_prices")
        batch.drop_column("weekly_cap")
        batch.drop_column("min_gap_hours")
    op.drop_index("ix_tasks_tenant_debtor", table_name="tasks")
    op.drop_index("ix_tasks_tenant_queue", table_name="tasks")
    op.drop_table("tasks")
