"""debtor references: (tenant_id, debtor_id) foreign keys; import debtor refs

* Rows that belong to a debtor (obligations, payments, allocations, balances, tags) now
  reference ``debtors (tenant_id, id)`` with one composite key instead of two separate ones
  (``tenant_id`` -> tenants, ``debtor_id`` -> debtors): a row can no longer name another
  tenant's debtor, and each insert pays one foreign-key check instead of two.
* Each chunk of an import is staged under its own key (two chunks load at once on
  PostgreSQL), so the staging key's statistics are refreshed per chunk, cheaply.
* The staging tables that are only ever scanned lose their key index.
* ``import_stage_refs`` maps every debtor reference a staged chunk uses to the debtor's id
  (``UNLOGGED`` on PostgreSQL, like the other staging tables), so the chunk's statements join
  a few thousand resolved rows instead of the tenant's whole debtor table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEBTOR_OWNED = ("obligations", "payments", "allocations", "debtor_balances", "debtor_tags")
# Scanned whole (they hold a chunk or two), never probed: the key index only cost inserts.
UNINDEXED_STAGING = ("import_stage_contacts", "import_stage_obligations", "import_stage_payments")
STAGING = ("import_stage_debtors", "import_stage_tags", "import_stage_contacts",
           "import_stage_obligations", "import_stage_payments", "import_stage_refs")


def upgrade() -> None:
    with op.batch_alter_table("debtors") as batch:
        batch.create_unique_constraint("uq_debtors_tenant_id_id", ["tenant_id", "id"])
    for table in DEBTOR_OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_tenant_id_tenants", type_="foreignkey")
            batch.drop_constraint(f"fk_{table}_debtor_id_debtors", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_tenant_id_debtors", "debtors",
                                     ["tenant_id", "debtor_id"], ["tenant_id", "id"],
                                     ondelete="CASCADE")
    for table in UNINDEXED_STAGING:
        op.drop_index(f"ix_{table}_import", table_name=table)
    prefixes = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "import_stage_refs",
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("external_ref", sa.String(128), nullable=False),
        sa.Column("debtor_id", sa.BigInteger(), nullable=True),
        sa.Column("existed", sa.Boolean(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", "external_ref", name=op.f("pk_import_stage_refs")),
        prefixes=prefixes,
    )
    if prefixes:
        # Each chunk of an import is staged under a key of its own and re-analysed for just
        # that column: a small sample is enough (there are one or two keys at a time).
        for table in STAGING:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN import_id SET STATISTICS 10")


def downgrade() -> None:
    op.drop_table("import_stage_refs")
    for table in UNINDEXED_STAGING:
        op.create_index(f"ix_{table}_import", table, ["import_id"])
    for table in DEBTOR_OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_tenant_id_debtors", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_debtor_id_debtors", "debtors", ["debtor_id"],
                                     ["id"], ondelete="CASCADE")
            batch.create_foreign_key(f"fk_{table}_tenant_id_tenants", "tenants", ["tenant_id"],
                                     ["id"], ondelete="CASCADE")
    with op.batch_alter_table("debtors") as batch:
        batch.drop_constraint("uq_debtors_tenant_id_id", type_="unique")
