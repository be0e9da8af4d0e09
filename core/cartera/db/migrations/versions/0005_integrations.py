"""integrations and inbound webhooks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider_kind", sa.String(16), nullable=False),
        sa.Column("provider_name", sa.String(100), nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("secrets_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("secret_names", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant(),
    )
    op.create_index("ix_integrations_tenant_kind", "integrations",
                    ["tenant_id", "provider_kind"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("integration_id", BigId,
                  sa.ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("headers", Json, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("signature_valid", sa.Boolean(), nullable=False),
        sa.Column("rejection", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events_new", sa.Integer(), nullable=False),
        sa.Column("events_duplicate", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _tenant(),
    )
    op.create_index("ix_webhook_deliveries_integration", "webhook_deliveries",
                    ["integration_id", "id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("integration_id", BigId,
                  sa.ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("delivery_id", BigId,
                  sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        _tenant(),
    )
    op.create_index("uq_webhook_events_integration_event", "webhook_events",
                    ["integration_id", "event_id"], unique=True)


def downgrade() -> None:
    op.drop_table("webhook_events")
    op.drop_table("webhook_deliveries")
    op.drop_table("integrations")
