"""compliance decisions: every gate decision, one row per reason (the compliance report)

Revision ID: 0023
Revises: 0029
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "compliance_decisions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("debtor_id", sa.BigInteger(), nullable=True),
        sa.Column("subject_id", sa.BigInteger(), nullable=True),
        sa.Column("deferral_seconds", sa.Integer(), nullable=True),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_compliance_decisions_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_decisions")),
    )
    op.create_index("ix_compliance_decisions_tenant_decided_at", "compliance_decisions",
                    ["tenant_id", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_compliance_decisions_tenant_decided_at",
                  table_name="compliance_decisions")
    op.drop_table("compliance_decisions")
