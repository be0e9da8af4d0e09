"""erp_postings: found by payment, and when the last attempt was made

* ``ix_erp_postings_payment``: a payment's read (``GET /v1/payments/{id}``) shows its ERP
  posting; the unique index leads with the integration, so it needs its own.
* ``erp_postings.last_attempt_at``: when the outbox last tried to post (``NULL``: never).

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0039"
down_revision: str | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("erp_postings") as batch:
        batch.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True),
                                   nullable=True))
    op.create_index("ix_erp_postings_payment", "erp_postings", ["payment_id"])


def downgrade() -> None:
    op.drop_index("ix_erp_postings_payment", table_name="erp_postings")
    with op.batch_alter_table("erp_postings") as batch:
        batch.drop_column("last_attempt_at")
