"""messaging: templates, interactions and their timeline, opt-out keywords; job run_after;
index on allocations.credit_note_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Instant = sa.DateTime(timezone=True)


def _tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run_after", Instant, nullable=True))
    op.create_index("ix_allocations_credit_note", "allocations", ["credit_note_id"])
    op.create_table(
        "message_templates",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("whatsapp", Json, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        _tenant(),
        sa.UniqueConstraint("tenant_id", "code", "channel", "locale",
                            name="uq_message_templates_tenant_id"),
    )
    op.create_table(
        "interactions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("debtor_id", BigId, sa.ForeignKey("debtors.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("integration_id", BigId,
                  sa.ForeignKey("integrations.id", ondelete="SET NULL"), nullable=True),
        sa.Column("template_id", BigId,
                  sa.ForeignKey("message_templates.id", ondelete="SET NULL"), nullable=True),
        sa.Column("contact_point_id", BigId,
                  sa.ForeignKey("contact_points.id", ondelete="SET NULL"), nullable=True),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("obligation_ids", Json, nullable=False),
        sa.Column("variables", Json, nullable=False),
        sa.Column("content", Json, nullable=True),
        sa.Column("verdict", Json, nullable=True),
        sa.Column("trigger", Json, nullable=False),
        sa.Column("not_before", Instant, nullable=True),
        sa.Column("failure_code", sa.String(100), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("cost_minor", sa.BigInteger(), nullable=True),
        sa.Column("cost_currency", sa.String(3), nullable=True),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        _tenant(),
    )
    op.create_index("ix_interactions_debtor", "interactions", ["debtor_id", "id"])
    op.create_index("ix_interactions_provider_message", "interactions",
                    ["integration_id", "provider_message_id"])
    op.create_table(
        "interaction_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("interaction_id", BigId,
                  sa.ForeignKey("interactions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", Instant, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("detail", Json, nullable=False),
        _tenant(),
    )
    op.create_index("ix_interaction_events_interaction", "interaction_events",
                    ["interaction_id", "id"])
    op.create_table(
        "opt_out_keywords",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("keyword", sa.String(64), nullable=False),
        _tenant(),
        sa.UniqueConstraint("tenant_id", "keyword", name="uq_opt_out_keywords_tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("opt_out_keywords")
    op.drop_table("interaction_events")
    op.drop_table("interactions")
    op.drop_table("message_templates")
    op.drop_index("ix_allocations_credit_note", "allocations")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("run_after")
