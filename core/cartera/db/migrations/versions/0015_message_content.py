"""message content: contact-point suppressions; provider event times on status events

* ``contact_points.suppressions``: channels a contact point cannot be used for any more
  because the provider said so (hard bounce, spam complaint, carrier opt-out), each with
  its reason, provider code, interaction and instant. ``{}`` for existing rows.
* ``interaction_events.occurred_at``: when the provider says the event happened (``at`` is
  when Cartera recorded it); the status timeline is ordered by it. Existing webhook events
  recorded the provider's time in ``at``, so it is copied for them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("contact_points") as batch:
        batch.add_column(sa.Column("suppressions", Json, nullable=False,
                                   server_default=sa.text("'{}'")))
    with op.batch_alter_table("interaction_events") as batch:
        batch.add_column(sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE interaction_events SET occurred_at = at WHERE source = 'webhook'")


def downgrade() -> None:
    with op.batch_alter_table("interaction_events") as batch:
        batch.drop_column("occurred_at")
    with op.batch_alter_table("contact_points") as batch:
        batch.drop_column("suppressions")
