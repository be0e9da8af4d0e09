"""payments.disputed_at: a payment the payer disputes (a chargeback or mediation open)

The payment stays applied while the dispute is open; lost (charged back) it is reversed, won
(approved again) the mark is cleared.

Revision ID: 0038
Revises: 0028
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0038"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("disputed_at")
