"""message part ids: the provider's id of each part of a long SMS we sent

* ``message_part_ids``: one row per accepted part of a message sent in several parts
  (integration, interaction, the part's provider id, its index and the part count), so a
  receipt naming only its part's id (no outbox id) is matched to its message.
* ``webhook_events``: a partial index on ``received_at`` of the inbound SMS fragments
  still waiting for their other parts (``reason = 'fragment_waiting'``), for the expiry.

Revision ID: 0029
Revises: 0033
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WAITING = sa.text("reason = 'fragment_waiting'")


def _fk(table: str, column: str, target: str) -> sa.Column[int]:
    return sa.Column(column, _ID,
                     sa.ForeignKey(f"{target}.id", ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_{column}_{target}")),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "message_part_ids",
        sa.Column("id", _ID, nullable=False),
        _fk("message_part_ids", "integration_id", "integrations"),
        _fk("message_part_ids", "interaction_id", "interactions"),
        sa.Column("provider_message_id", sa.String(255), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("part_count", sa.Integer(), nullable=False),
        _fk("message_part_ids", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_part_ids")),
    )
    op.create_index("ix_message_part_ids_provider", "message_part_ids",
                    ["integration_id", "provider_message_id"])
    op.create_index("ix_webhook_events_fragments_waiting", "webhook_events", ["received_at"],
                    postgresql_where=WAITING, sqlite_where=WAITING)


def downgrade() -> None:
    op.drop_index("ix_webhook_events_fragments_waiting", table_name="webhook_events")
    op.drop_index("ix_message_part_ids_provider", table_name="message_part_ids")
    op.drop_table("message_part_ids")
