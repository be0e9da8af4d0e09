"""events: the delivery log indexed by delivery

* ``ix_event_delivery_attempts_delivery``: deleting a delivery (its event purged after the
  retention period, or its endpoint deleted) cascades to its attempts; PostgreSQL finds
  them by this index instead of scanning the whole log once per deleted delivery.

Revision ID: 0041
Revises: 0039
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0041"
down_revision: str | None = "0039"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_event_delivery_attempts_delivery", "event_delivery_attempts",
                    ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_event_delivery_attempts_delivery", "event_delivery_attempts")
