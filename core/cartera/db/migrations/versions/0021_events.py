"""outbound events: the outbox, webhook endpoints, deliveries and their attempts

* ``outbox_events``: one row per state change ISVs see, written in the change's
  transaction; ``seq`` orders (the cursor), ``id`` (``evt_...``) is public. ``dispatched``
  marks the events already fanned out to matching endpoints (partial index on the rest).
* ``webhook_endpoints``: URLs with event-type filters and a sealed signing secret (and the
  previous one during a rotation's grace period).
* ``event_deliveries``: one event to one endpoint, claimed by workers, retried with backoff.
* ``event_delivery_attempts``: each HTTP attempt (status code, latency, short excerpt).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OPEN = sa.text("status IN ('pending', 'delivering')")


def _tenant(table: str) -> sa.Column[int]:
    return sa.Column("tenant_id", _ID,
                     sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_tenant_id_tenants")),
                     nullable=False)


def _fk(table: str, column: str, target: str, key: str) -> sa.Column[int]:
    return sa.Column(column, _ID,
                     sa.ForeignKey(f"{target}.{key}", ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_{column}_{target}")),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("seq", _ID, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("debtor_id", sa.BigInteger(), nullable=True),
        sa.Column("data", Json, nullable=False),
        sa.Column("dispatched", sa.Boolean(), server_default=sa.false(), nullable=False),
        _tenant("outbox_events"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_events_id")),
    )
    op.create_index("ix_outbox_events_tenant_seq", "outbox_events", ["tenant_id", "seq"])
    op.create_index("ix_outbox_events_created_at", "outbox_events", ["created_at"])
    op.create_index("ix_outbox_events_undispatched", "outbox_events", ["seq"],
                    postgresql_where=sa.text("NOT dispatched"),
                    sqlite_where=sa.text("NOT dispatched"))
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", _ID, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("event_types", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(32), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_expires_at", Instant, nullable=True),
        sa.Column("failing_since", Instant, nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        _tenant("webhook_endpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_tenant_id", "webhook_endpoints", ["tenant_id", "id"])
    op.create_table(
        "event_deliveries",
        sa.Column("id", _ID, nullable=False),
        _fk("event_deliveries", "event_seq", "outbox_events", "seq"),
        _fk("event_deliveries", "endpoint_id", "webhook_endpoints", "id"),
        sa.Column("debtor_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Instant, nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("delivered_at", Instant, nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        _tenant("event_deliveries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
    )
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["next_attempt_at"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_event_deliveries_debtor_order", "event_deliveries",
                    ["endpoint_id", "debtor_id", "id"], postgresql_where=OPEN,
                    sqlite_where=OPEN)
    op.create_index("ix_event_deliveries_event_seq", "event_deliveries", ["event_seq"])
    op.create_table(
        "event_delivery_attempts",
        sa.Column("id", _ID, nullable=False),
        _fk("event_delivery_attempts", "delivery_id", "event_deliveries", "id"),
        _fk("event_delivery_attempts", "endpoint_id", "webhook_endpoints", "id"),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", Instant, nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("response_excerpt", sa.String(200), nullable=True),
        _tenant("event_delivery_attempts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_delivery_attempts")),
    )
    op.create_index("ix_event_delivery_attempts_endpoint", "event_delivery_attempts",
                    ["endpoint_id", "id"])


def downgrade() -> None:
    op.drop_table("event_delivery_attempts")
    op.drop_table("event_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("outbox_events")
