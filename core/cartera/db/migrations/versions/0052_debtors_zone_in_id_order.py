"""debtors: the zone index carries the id, so a zone's debtors are read in id order

``GET /v1/debtors?zone=...`` pages in id order. With ``(tenant_id, zone)`` the planner walked
the primary key and filtered by zone: a zone with few debtors cost a scan over most of the
tenant's to fill a page. ``(tenant_id, zone, id)`` gives the zone's debtors in page order
(and serves every query the old index did).

Revision ID: 0052
Revises: 0051
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0052"
down_revision: str | None = "0051"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_debtors_tenant_zone_id", "debtors", ["tenant_id", "zone", "id"])
    op.drop_index("ix_debtors_tenant_zone", table_name="debtors")


def downgrade() -> None:
    op.create_index("ix_debtors_tenant_zone", "debtors", ["tenant_id", "zone"])
    op.drop_index("ix_debtors_tenant_zone_id", table_name="debtors")
