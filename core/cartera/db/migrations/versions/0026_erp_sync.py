"""ERP sync: settings, runs, cursors, row errors, seen items, the posting outbox

* ``erp_sync_settings``: schedule, page size and write-back per ERP integration.
* ``erp_sync_runs``: each sync run and its counts; ``erp_sync_row_errors`` its bad rows.
* ``erp_sync_cursors``: where each (integration, stream) pull continues, written with the
  page it follows.
* ``erp_sync_seen``: open items delivered per integration and the full pull that saw them.
* ``erp_postings``: the write-back outbox (one row per integration and payment).
* ``erp_item_payments``: amounts of an item's ERP paid-to-date that are Cartera payments.

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0026"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _tenant(table: str) -> sa.Column[int]:
    return sa.Column("tenant_id", _ID,
                     sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_tenant_id_tenants")),
                     nullable=False)


def _fk(table: str, column: str, target: str, *, primary: bool = False,
        ondelete: str = "CASCADE", nullable: bool = False) -> sa.Column[int]:
    return sa.Column(column, _ID,
                     sa.ForeignKey(f"{target}.id", ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target}")),
                     nullable=nullable, primary_key=primary)


def upgrade() -> None:
    op.create_table(
        "erp_sync_settings",
        _fk("erp_sync_settings", "integration_id", "integrations"),
        sa.Column("every_minutes", sa.Integer(), nullable=True),
        sa.Column("at_times", Json, nullable=False),
        sa.Column("page_size", sa.Integer(), nullable=False),
        sa.Column("write_back", sa.Boolean(), nullable=False),
        sa.Column("write_back_since", Instant, nullable=True),
        sa.Column("next_run_at", Instant, nullable=True),
        sa.Column("updated_at", Instant, nullable=False),
        _tenant("erp_sync_settings"),
        sa.PrimaryKeyConstraint("integration_id", name=op.f("pk_erp_sync_settings")),
    )
    op.create_table(
        "erp_sync_runs",
        sa.Column("id", _ID, nullable=False),
        _fk("erp_sync_runs", "integration_id", "integrations"),
        _fk("erp_sync_runs", "job_id", "jobs", ondelete="SET NULL", nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_in", sa.BigInteger(), nullable=False),
        sa.Column("rows_changed", sa.BigInteger(), nullable=False),
        sa.Column("rows_failed", sa.BigInteger(), nullable=False),
        sa.Column("rows_closed", sa.BigInteger(), nullable=False),
        sa.Column("payments_matched", sa.BigInteger(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("cursors", Json, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("started_at", Instant, nullable=True),
        sa.Column("finished_at", Instant, nullable=True),
        _tenant("erp_sync_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_sync_runs")),
    )
    op.create_index("ix_erp_sync_runs_integration", "erp_sync_runs", ["integration_id", "id"])
    op.create_table(
        "erp_sync_cursors",
        _fk("erp_sync_cursors", "integration_id", "integrations"),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("resting", sa.Boolean(), nullable=False),
        sa.Column("full_run_id", sa.BigInteger(), nullable=True),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", Instant, nullable=False),
        _tenant("erp_sync_cursors"),
        sa.PrimaryKeyConstraint("integration_id", "stream", name=op.f("pk_erp_sync_cursors")),
    )
    op.create_table(
        "erp_sync_row_errors",
        sa.Column("id", _ID, nullable=False),
        _fk("erp_sync_row_errors", "run_id", "erp_sync_runs"),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("row_key", sa.String(200), nullable=True),
        sa.Column("field", sa.String(128), nullable=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        _tenant("erp_sync_row_errors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_sync_row_errors")),
    )
    op.create_index("ix_erp_sync_row_errors_run", "erp_sync_row_errors", ["run_id", "id"])
    op.create_table(
        "erp_sync_seen",
        _fk("erp_sync_seen", "integration_id", "integrations"),
        sa.Column("external_ref", sa.String(128), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("integration_id", "external_ref", name=op.f("pk_erp_sync_seen")),
    )
    op.create_table(
        "erp_postings",
        sa.Column("id", _ID, nullable=False),
        _fk("erp_postings", "integration_id", "integrations"),
        _fk("erp_postings", "payment_id", "payments"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("erp_document_id", sa.String(200), nullable=True),
        sa.Column("message", sa.String(1000), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Instant, nullable=False),
        sa.Column("claimed_until", Instant, nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("posted_at", Instant, nullable=True),
        _tenant("erp_postings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_postings")),
    )
    op.create_index("uq_erp_postings_integration_payment", "erp_postings",
                    ["integration_id", "payment_id"], unique=True)
    op.create_index("ix_erp_postings_due", "erp_postings", ["status", "next_attempt_at"])
    op.create_table(
        "erp_item_payments",
        _fk("erp_item_payments", "integration_id", "integrations"),
        sa.Column("source_key", sa.String(200), nullable=False),
        sa.Column("external_ref", sa.String(128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("integration_id", "source_key", "external_ref",
                                name=op.f("pk_erp_item_payments")),
    )


def downgrade() -> None:
    op.drop_table("erp_item_payments")
    op.drop_index("ix_erp_postings_due", table_name="erp_postings")
    op.drop_index("uq_erp_postings_integration_payment", table_name="erp_postings")
    op.drop_table("erp_postings")
    op.drop_table("erp_sync_seen")
    op.drop_index("ix_erp_sync_row_errors_run", table_name="erp_sync_row_errors")
    op.drop_table("erp_sync_row_errors")
    op.drop_table("erp_sync_cursors")
    op.drop_index("ix_erp_sync_runs_integration", table_name="erp_sync_runs")
    op.drop_table("erp_sync_runs")
    op.drop_table("erp_sync_settings")
