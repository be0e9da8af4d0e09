"""segmentation debtor references; history tables without foreign keys; a tenant-first
covering index on debtor_balances

A first segmentation run writes one row per debtor into each of ``debtor_stages``,
``stage_history``, ``segment_memberships`` and ``segment_history`` (4M rows at 1M debtors).
PostgreSQL checks foreign keys row by row (a cached query and a key-share row lock, about
3-4 us each on the bench machine), and before this revision a first run paid 13 checks
per debtor: they were most of its cost (measured: 200k rows into ``debtor_stages`` take
0.38 s without its two references and 1.8 s with them).

* The current-state tables (``debtor_stages``, ``segment_memberships``) reference
  ``debtors (tenant_id, id)`` with one composite key, like 0008 did for the portfolio
  tables: a row can no longer name another tenant's debtor, and each insert pays one check
  instead of two. They keep their reference to the stage or segment.
* The history tables (``stage_history``, ``segment_history``) are append-only event logs
  and lose all their foreign keys (tenant, debtor, from/to stage or segment, run): the
  stages, segments and runs they name are retired or kept, never deleted (nothing in the
  code base deletes one), so ``ON DELETE SET NULL`` never fired; and the one deletion that
  concerns them, a debtor's (``DELETE /v1/debtors/{id}``), deletes the debtor's history
  explicitly in the same transaction. Rows are only ever written by the segmentation code
  from ids it has just read. That removes 7 of the 11 checks per debtor of a first run.
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

CURRENT_STATE = ("debtor_stages", "segment_memberships")
HISTORY_REFERENCES = {
    "stage_history": {"tenant_id": "tenants", "debtor_id": "debtors",
                      "from_stage_id": "stages", "to_stage_id": "stages"},
    "segment_history": {"tenant_id": "tenants", "debtor_id": "debtors",
                        "from_segment_id": "segments", "to_segment_id": "segments",
                        "run_id": "segment_runs"},
}
SUMMARY_COLUMNS = ["currency", "oldest_unpaid_due_date", "last_payment_date", "open_count",
                   "outstanding_minor", "overdue_minor"]


def upgrade() -> None:
    for table, refs in HISTORY_REFERENCES.items():
        with op.batch_alter_table(table) as batch:
            for col, target in refs.items():
                batch.drop_constraint(f"fk_{table}_{col}_{target}", type_="foreignkey")
    for table in CURRENT_STATE:
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
    for table in CURRENT_STATE:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_tenant_id_debtors", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_debtor_id_debtors", "debtors", ["debtor_id"],
                                     ["id"], ondelete="CASCADE")
            batch.create_foreign_key(f"fk_{table}_tenant_id_tenants", "tenants", ["tenant_id"],
                                     ["id"], ondelete="CASCADE")
    for table, refs in HISTORY_REFERENCES.items():
        with op.batch_alter_table(table) as batch:
            for col, target in refs.items():
                batch.create_foreign_key(
                    f"fk_{table}_{col}_{target}", target, [col], ["id"],
                    ondelete="CASCADE" if target in ("tenants", "debtors") else "SET NULL")
