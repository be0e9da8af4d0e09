"""send claims: an outbound interaction is claimed (``sending``) before its provider call

* ``interactions.attempts``: provider attempts made so far; it is also the claim's token
  (an outcome is recorded only by the attempt that holds the claim).
* ``interactions.claimed_until``: the lease of a ``sending`` claim; a claim abandoned by a
  crashed worker is taken again once it expires.
* ``ix_interactions_sendable``: the batch claim's lookup (an integration's queued or
  leased messages in id order).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_interactions_sendable", "interactions",
                    ["integration_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_interactions_sendable", table_name="interactions")
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("attempts")
