"""negotiation: promises to pay and installment plans (arrangements)

* ``promises``: a debtor's promise to pay an amount by a date; ``(status, promised_date)``
  serves the periodic job (pending promises whose date has passed), ``(tenant_id,
  debtor_id)`` the segmentation feature ``broken_promises`` and per-debtor settling.
* ``arrangements`` and ``arrangement_installments``: installment plans;
  ``(status, next_deadline)`` serves the periodic job, ``(tenant_id, debtor_id)`` the
  feature ``active_installment_plan``.

Both reference ``debtors (tenant_id, id)`` with one composite key (see 0008).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)


def _debtor(table: str) -> list[Any]:
    return [sa.Column("debtor_id", _ID, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id", "debtor_id"],
                                    ["debtors.tenant_id", "debtors.id"],
                                    name=op.f(f"fk_{table}_tenant_id_debtors"),
                                    ondelete="CASCADE")]


def upgrade() -> None:
    op.create_table(
        "promises",
        sa.Column("id", _ID, nullable=False),
        *_debtor("promises"),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("promised_date", sa.Date(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("kept_at", Instant, nullable=True),
        sa.Column("broken_at", Instant, nullable=True),
        sa.Column("cancelled_at", Instant, nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_promises_amount_positive")),
        sa.CheckConstraint("status IN ('pending', 'kept', 'broken', 'cancelled')",
                           name=op.f("ck_promises_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promises")),
    )
    op.create_index("ix_promises_status_promised_date", "promises", ["status", "promised_date"])
    op.create_index("ix_promises_tenant_debtor", "promises", ["tenant_id", "debtor_id"])
    op.create_table(
        "arrangements",
        sa.Column("id", _ID, nullable=False),
        *_debtor("arrangements"),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("next_deadline", sa.Date(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("completed_at", Instant, nullable=True),
        sa.Column("broken_at", Instant, nullable=True),
        sa.Column("cancelled_at", Instant, nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.CheckConstraint("total_minor > 0", name=op.f("ck_arrangements_total_positive")),
        sa.CheckConstraint("status IN ('active', 'completed', 'broken', 'cancelled')",
                           name=op.f("ck_arrangements_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrangements")),
    )
    op.create_index("ix_arrangements_status_next_deadline", "arrangements",
                    ["status", "next_deadline"])
    op.create_index("ix_arrangements_tenant_debtor", "arrangements", ["tenant_id", "debtor_id"])
    op.create_table(
        "arrangement_installments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("arrangement_id", _ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_minor", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.CheckConstraint("amount_minor > 0",
                           name=op.f("ck_arrangement_installments_amount_positive")),
        sa.ForeignKeyConstraint(["arrangement_id"], ["arrangements.id"],
                                name=op.f("fk_arrangement_installments_arrangement_id_"
                                          "arrangements"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_arrangement_installments_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrangement_installments")),
        sa.UniqueConstraint("arrangement_id", "number",
                            name=op.f("uq_arrangement_installments_arrangement_id_number")),
    )


def downgrade() -> None:
    op.drop_table("arrangement_installments")
    op.drop_index("ix_arrangements_tenant_debtor", table_name="arrangements")
    op.drop_index("ix_arrangements_status_next_deadline", table_name="arrangements")
    op.drop_table("arrangements")
    op.drop_index("ix_promises_tenant_debtor", table_name="promises")
    op.drop_index("ix_promises_status_promised_date", table_name="promises")
    op.drop_table("promises")
