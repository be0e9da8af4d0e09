"""segmentation debtor references; a tenant-first covering index on debtor_balances

* The segmentation tables that belong to a debtor (``debtor_stages``, ``stage_history``,
  ``segment_memberships``, ``segment_history``) reference ``debtors (tenant_id, id)`` with
  one composite key, like 0008 did for the portfolio tables: a row can no longer name
  another tenant's debtor, and each insert pays one foreign-key check instead of two. A
  first segmentation run writes one row per debtor into each of the four (4M rows at 1M
  debtors), where PostgreSQL's per-row checks are most of the cost.
* ``debtor_balances (tenant_id, debtor_id)``: the per-debtor summary every whole-portfolio
  evaluation aggregates is read for one tenant, in debtor order; on PostgreSQL the index
  carries the summary's columns (``INCLUDE``), so the read is an index-only scan once the
  pages are all-visible (vacuumed), instead of one heap visit per balance row.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEBTOR_OWNED = ("debtor_stages", "stage_history", "segment_memberships", "segment_history")
SUMMARY_COLUMNS = ["currency", "oldest_unpaid_due_date", "last_payment_date", "open_count",
                   "outstanding_minor", "overdue_minor"]


def upgrade() -> None:
    for table in DEBTOR_OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_tenant_id_tenants", type_="foreignkey")
            batch.drop_constraint(f"fk_{table}_debtor_id_debtors", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_tenant_id_debtors", "debtors",
                                     ["tenant_id", "debtor_id"], ["tenant_id", "id"],
                                     ondelete="CASCADE")
    op.create_index("ix_debtor_balances_tenant_debtor", "debtor_balances",
                    ["tenant_id", "debtor_id"], postgresql_include=SUMMARY_COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_debtor_balances_tenant_debtor", table_name="debtor_balances")
    for table in DEBTOR_OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_tenant_id_debtors", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_debtor_id_debtors", "debtors", ["debtor_id"],
                                     ["id"], ondelete="CASCADE")
            batch.create_foreign_key(f"fk_{table}_tenant_id_tenants", "tenants", ["tenant_id"],
                                     ["id"], ondelete="CASCADE")
