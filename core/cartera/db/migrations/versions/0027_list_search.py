"""lists ISVs need: debtor search by national id and by contact value

* ``ix_debtors_tenant_national_id``: ``GET /v1/debtors?q=`` matches the national id exactly.
* ``ix_contact_points_tenant_value``: ``q`` matches an e-mail (lower-cased) or a phone
  (normalised to E.164) exactly, on any of the tenant's contact points.

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_debtors_tenant_national_id", "debtors", ["tenant_id", "national_id"])
    op.create_index("ix_contact_points_tenant_value", "contact_points", ["tenant_id", "value"])


def downgrade() -> None:
    op.drop_index("ix_contact_points_tenant_value", table_name="contact_points")
    op.drop_index("ix_debtors_tenant_national_id", table_name="debtors")
