"""imports staging

Staging tables for bulk imports (one chunk of one import at a time, ``UNLOGGED`` on
PostgreSQL: a crash only means the chunk is staged again), the per-import list of debtors
to rebalance, a machine-readable ``code`` on row errors and a failure reason on imports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _create(name: str, *columns: sa.Column, index: list[str] | None = None) -> None:
    prefixes = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(name, *columns, prefixes=prefixes)
    if index:
        op.create_index(f"ix_{name}_{'ref' if len(index) > 1 else 'import'}", name, index)


def upgrade() -> None:
    _create("import_stage_debtors",
            sa.Column("import_id", sa.BigInteger(), nullable=False),
            sa.Column("line", sa.Integer(), nullable=False),
            sa.Column("external_ref", sa.String(128), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("name", sa.String(300), nullable=False),
            sa.Column("national_id", sa.String(64), nullable=True),
            sa.Column("country", sa.String(2), nullable=False),
            sa.Column("subdivision", sa.String(16), nullable=True),
            sa.Column("timezone", sa.String(64), nullable=False),
            sa.Column("zone", sa.String(128), nullable=True),
            sa.Column("risk_score", sa.Integer(), nullable=True),
            sa.Column("attributes", _JSON, nullable=False),
            index=["import_id", "external_ref"])
    _create("import_stage_tags",
            sa.Column("import_id", sa.BigInteger(), nullable=False),
            sa.Column("external_ref", sa.String(128), nullable=False),
            sa.Column("tag", sa.String(64), nullable=False),
            index=["import_id", "external_ref", "tag"])
    _create("import_stage_contacts",
            sa.Column("import_id", sa.BigInteger(), nullable=False),
            sa.Column("external_ref", sa.String(128), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("value", sa.String(500), nullable=False),
            sa.Column("label", sa.String(64), nullable=True),
            sa.Column("consent", sa.String(16), nullable=False),
            sa.Column("opted_out_channels", _JSON, nullable=False),
            sa.Column("origin", sa.String(32), nullable=False),
            sa.Column("preferred", sa.Boolean(), nullable=False),
            index=["import_id"])
    _create("import_stage_obligations",
            sa.Column("import_id", sa.BigInteger(), nullable=False),
            sa.Column("line", sa.Integer(), nullable=False),
            sa.Column("external_ref", sa.String(128), nullable=False),
            sa.Column("debtor_external_ref", sa.String(128), nullable=False),
            sa.Column("portfolio_code", sa.String(64), nullable=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("product", sa.String(64), nullable=True),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("original_minor", sa.BigInteger(), nullable=False),
            sa.Column("prior_paid_minor", sa.BigInteger(), nullable=False),
            sa.Column("issue_date", sa.Date(), nullable=True),
            sa.Column("due_date", sa.Date(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            index=["import_id"])
    _create("import_stage_payments",
            sa.Column("import_id", sa.BigInteger(), nullable=False),
            sa.Column("line", sa.Integer(), nullable=False),
            sa.Column("external_ref", sa.String(128), nullable=False),
            sa.Column("debtor_external_ref", sa.String(128), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("amount_minor", sa.BigInteger(), nullable=False),
            sa.Column("paid_on", sa.Date(), nullable=False),
            sa.Column("method", sa.String(32), nullable=True),
            sa.Column("reference", sa.String(200), nullable=True),
            index=["import_id"])
    op.create_table("import_touched_debtors",
                    sa.Column("import_id", sa.BigInteger(), nullable=False),
                    sa.Column("debtor_id", sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint("import_id", "debtor_id",
                                            name=op.f("pk_import_touched_debtors")))
    with op.batch_alter_table("import_row_errors") as batch_op:
        batch_op.add_column(sa.Column("code", sa.String(64), nullable=True))
    with op.batch_alter_table("imports") as batch_op:
        batch_op.add_column(sa.Column("error", sa.String(1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imports") as batch_op:
        batch_op.drop_column("error")
    with op.batch_alter_table("import_row_errors") as batch_op:
        batch_op.drop_column("code")
    for name in ("import_touched_debtors", "import_stage_payments", "import_stage_obligations",
                 "import_stage_contacts", "import_stage_tags", "import_stage_debtors"):
        op.drop_table(name)
