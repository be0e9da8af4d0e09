"""compliance settings: a tenant's policy for countries without a pack, and its creditor
identity (what the country packs check rendered content against)

One row per tenant, absent until the tenant changes a default (``unknown_country`` =
``allow``: a contact to a country with no pack is allowed with a visible reason).

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "compliance_settings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("unknown_country", sa.String(length=8), nullable=False),
        sa.Column("creditor_name", sa.String(length=300), nullable=True),
        sa.Column("creditor_tax_id", sa.String(length=64), nullable=True),
        sa.Column("creditor_address", sa.Text(), nullable=True),
        sa.Column("agency_name", sa.String(length=300), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_compliance_settings_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_settings")),
    )
    op.create_index("uq_compliance_settings_tenant", "compliance_settings", ["tenant_id"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_compliance_settings_tenant", table_name="compliance_settings")
    op.drop_table("compliance_settings")
