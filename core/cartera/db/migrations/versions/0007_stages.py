"""stages: per-tenant collection stages, debtors' current stage, stage history

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)


def _tenant(table: str) -> list[Any]:
    return [sa.Column("tenant_id", _ID, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                    name=op.f(f"fk_{table}_tenant_id_tenants"),
                                    ondelete="CASCADE")]


def upgrade() -> None:
    op.create_table(
        "stages",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("min_dpd", sa.Integer(), nullable=False),
        sa.Column("max_dpd", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        *_tenant("stages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_stages_tenant_id_code")),
    )
    op.create_table(
        "debtor_stages",
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("stage_id", _ID, nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("set_by", sa.String(length=200), nullable=True),
        sa.Column("set_at", Instant, nullable=False),
        *_tenant("debtor_stages"),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"],
                                name=op.f("fk_debtor_stages_debtor_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"],
                                name=op.f("fk_debtor_stages_stage_id_stages"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_debtor_stages")),
    )
    op.create_index("ix_debtor_stages_tenant_stage", "debtor_stages", ["tenant_id", "stage_id"])
    op.create_table(
        "stage_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("from_stage_id", _ID, nullable=True),
        sa.Column("to_stage_id", _ID, nullable=True),
        sa.Column("at", Instant, nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        *_tenant("stage_history"),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"],
                                name=op.f("fk_stage_history_debtor_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["from_stage_id"], ["stages.id"],
                                name=op.f("fk_stage_history_from_stage_id_stages"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["to_stage_id"], ["stages.id"],
                                name=op.f("fk_stage_history_to_stage_id_stages"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_history")),
    )
    op.create_index("ix_stage_history_debtor", "stage_history", ["tenant_id", "debtor_id", "at"])


def downgrade() -> None:
    op.drop_table("stage_history")
    op.drop_table("debtor_stages")
    op.drop_table("stages")
