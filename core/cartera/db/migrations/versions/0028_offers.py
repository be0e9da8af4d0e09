"""offers, the tenant's offer policy and debtors' self-service links

* ``offer_policies``: one row per tenant (limits per role, segment and days past due).
* ``offers``: discounts, settlements and installment proposals made to a debtor.
* ``self_service_links``: debtor-facing access links, stored as the hash of their token.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)
LIVE = sa.text("status IN ('pending_approval', 'open', 'accepted')")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "offer_policies",
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("rules", Json, nullable=False),
        sa.Column("max_validity_days", sa.Integer(), nullable=False),
        sa.Column("max_promise_horizon_days", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_offer_policies_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_offer_policies")),
    )
    op.create_table(
        "offers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("obligation_ids", Json, nullable=False),
        sa.Column("covered_minor", sa.BigInteger(), nullable=False),
        sa.Column("lawful_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_bps", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("installments", Json, nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("segment_id", _ID, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requester_limit_bps", sa.Integer(), nullable=False),
        sa.Column("approval_limit_bps", sa.Integer(), nullable=False),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("approved_at", Instant, nullable=True),
        sa.Column("accepted_by", sa.String(200), nullable=True),
        sa.Column("accepted_at", Instant, nullable=True),
        sa.Column("arrangement_id", _ID, nullable=True),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", Instant, nullable=True),
        sa.Column("credit_note_id", _ID, nullable=True),
        sa.Column("cancelled_at", Instant, nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_offers_amount_positive")),
        sa.CheckConstraint("discount_minor >= 0", name=op.f("ck_offers_discount_not_negative")),
        sa.CheckConstraint("status IN ('pending_approval', 'open', 'accepted', 'applied', "
                           "'expired', 'cancelled')", name=op.f("ck_offers_status_known")),
        sa.CheckConstraint("kind IN ('discount', 'settlement', 'installments')",
                           name=op.f("ck_offers_kind_known")),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_offers_tenant_id_debtors"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["arrangement_id"], ["arrangements.id"],
                                name=op.f("fk_offers_arrangement_id_arrangements"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["credit_note_id"], ["obligations.id"],
                                name=op.f("fk_offers_credit_note_id_obligations"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )
    op.create_index("ix_offers_tenant_debtor_status", "offers",
                    ["tenant_id", "debtor_id", "status"])
    op.create_index("ix_offers_status_expires", "offers", ["status", "expires_at"])
    op.create_index("uq_offers_live", "offers", ["tenant_id", "debtor_id", "currency"],
                    unique=True, postgresql_where=LIVE, sqlite_where=LIVE)
    op.create_table(
        "self_service_links",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.Column("revoked_at", Instant, nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_self_service_links_tenant_id_debtors"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_self_service_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_self_service_links_token_hash")),
    )
    op.create_index("ix_self_service_links_tenant_debtor", "self_service_links",
                    ["tenant_id", "debtor_id", "id"])


def downgrade() -> None:
    op.drop_table("self_service_links")
    op.drop_index("uq_offers_live", table_name="offers")
    op.drop_index("ix_offers_status_expires", table_name="offers")
    op.drop_index("ix_offers_tenant_debtor_status", table_name="offers")
    op.drop_table("offers")
    op.drop_table("offer_policies")
