"""payment links, provider payments and reconciliation exceptions; promises partly kept

* ``payment_links``: hosted checkout links made through a payment integration, one open
  per (debtor, purpose) (partial unique index), reserved before the provider is called.
* ``payments`` gain the provider-side identity of a reconciled payment (unique per tenant,
  provider and provider payment id), its link, what was refunded, and the ``held`` status
  (unapplied credit waiting for a person).
* ``reconciliation_exceptions``: what a provider reported that could not be applied.
* ``promises.status`` may be ``partly_kept``.

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0024"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OPEN = sa.text("status = 'open'")
PROMISE_OLD = "status IN ('pending', 'kept', 'broken', 'cancelled')"
PROMISE_NEW = "status IN ('pending', 'kept', 'partly_kept', 'broken', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "payment_links",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("integration_id", _ID, nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("amount_kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("obligation_ids", Json, nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.Column("provider_idempotency_key", sa.String(64), nullable=False),
        sa.Column("provider_link_id", sa.String(255), nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("provider_payment_id", sa.String(64), nullable=True),
        sa.Column("payment_id", _ID, nullable=True),
        sa.Column("checked_at", Instant, nullable=True),
        sa.Column("calling_until", Instant, nullable=True),
        sa.Column("status_reason", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.Column("paid_at", Instant, nullable=True),
        sa.Column("ended_at", Instant, nullable=True),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payment_links_amount_positive")),
        sa.CheckConstraint("status IN ('open', 'paid', 'expired', 'cancelled')",
                           name=op.f("ck_payment_links_status_known")),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_payment_links_tenant_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"],
                                name=op.f("fk_payment_links_integration_id_integrations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"],
                                name=op.f("fk_payment_links_payment_id_payments"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_links")),
    )
    op.create_index("uq_payment_links_open_purpose", "payment_links",
                    ["tenant_id", "debtor_id", "purpose"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_payment_links_tenant_debtor", "payment_links",
                    ["tenant_id", "debtor_id", "id"])
    op.create_index("ix_payment_links_open_expiry", "payment_links", ["expires_at"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("refunded_minor", sa.BigInteger(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("provider", sa.String(100), nullable=True))
        batch.add_column(sa.Column("provider_payment_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("integration_id", _ID, nullable=True))
        batch.add_column(sa.Column("payment_link_id", _ID, nullable=True))
        batch.create_foreign_key(op.f("fk_payments_integration_id_integrations"), "integrations",
                                 ["integration_id"], ["id"], ondelete="SET NULL")
        batch.create_foreign_key(op.f("fk_payments_payment_link_id_payment_links"), "payment_links",
                                 ["payment_link_id"], ["id"], ondelete="SET NULL")
        batch.create_check_constraint(
            "refund_within_amount", "refunded_minor >= 0 AND refunded_minor <= amount_minor")
        batch.create_index("uq_payments_provider_payment",
                           ["tenant_id", "provider", "provider_payment_id"], unique=True)
    op.create_table(
        "reconciliation_exceptions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("integration_id", _ID, nullable=True),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("provider_payment_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("debtor_id", _ID, nullable=True),
        sa.Column("payment_link_id", _ID, nullable=True),
        sa.Column("payment_id", _ID, nullable=True),
        sa.Column("provider_view", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.Column("resolved_at", Instant, nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.CheckConstraint("status IN ('open', 'resolved')",
                           name=op.f("ck_reconciliation_exceptions_status_known")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], ondelete="CASCADE",
            name=op.f("fk_reconciliation_exceptions_tenant_id_tenants")),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"], ondelete="SET NULL",
            name=op.f("fk_reconciliation_exceptions_integration_id_integrations")),
        sa.ForeignKeyConstraint(
            ["payment_link_id"], ["payment_links.id"], ondelete="SET NULL",
            name=op.f("fk_reconciliation_exceptions_payment_link_id_payment_links")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], ondelete="SET NULL",
            name=op.f("fk_reconciliation_exceptions_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_exceptions")),
    )
    op.create_index("uq_reconciliation_exceptions_key", "reconciliation_exceptions",
                    ["tenant_id", "provider", "provider_payment_id", "kind"], unique=True)
    op.create_index("ix_reconciliation_exceptions_tenant_status", "reconciliation_exceptions",
                    ["tenant_id", "status", "id"])
    with op.batch_alter_table("promises") as batch:
        batch.drop_constraint(op.f("ck_promises_status_known"), type_="check")
        batch.create_check_constraint("status_known", PROMISE_NEW)


def downgrade() -> None:
    op.execute("UPDATE promises SET status = 'broken' WHERE status = 'partly_kept'")
    with op.batch_alter_table("promises") as batch:
        batch.drop_constraint(op.f("ck_promises_status_known"), type_="check")
        batch.create_check_constraint("status_known", PROMISE_OLD)
    op.drop_table("reconciliation_exceptions")
    op.execute("DELETE FROM payments WHERE status = 'held'")
    with op.batch_alter_table("payments") as batch:
        batch.drop_index("uq_payments_provider_payment")
        batch.drop_constraint(op.f("ck_payments_refund_within_amount"), type_="check")
        batch.drop_constraint(op.f("fk_payments_payment_link_id_payment_links"),
                              type_="foreignkey")
        batch.drop_constraint(op.f("fk_payments_integration_id_integrations"),
                              type_="foreignkey")
        batch.drop_column("payment_link_id")
        batch.drop_column("integration_id")
        batch.drop_column("provider_payment_id")
        batch.drop_column("provider")
        batch.drop_column("refunded_minor")
    op.drop_table("payment_links")
