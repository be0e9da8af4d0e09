"""strategies: strategies, versions, enrollments, planned actions, planner settings

* ``strategies`` and ``strategy_versions``: a version holds its bindings, rules and steps
  as JSON; a partial unique index keeps at most one active version per strategy.
* ``enrollments``: a debtor's journey through a version; a partial unique index keeps at
  most one live (active or paused) enrollment per debtor and strategy.
* ``actions``: planned steps, unique on ``(enrollment_id, step_index, due_on)`` so that a
  re-run of the planner never plans a step twice for the same day.
* ``strategy_settings``: a tenant's daily planning hour.

Revision ID: 0020
Revises: 0022
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
LIVE = "status IN ('active', 'paused')"


def _tenant(table: str) -> sa.Column[Any]:
    return sa.Column("tenant_id", _ID, sa.ForeignKey(
        "tenants.id", name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"),
        nullable=False)


def _debtor(table: str) -> list[Any]:
    return [sa.Column("debtor_id", _ID, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id", "debtor_id"],
                                    ["debtors.tenant_id", "debtors.id"],
                                    name=op.f(f"fk_{table}_tenant_id_debtors"),
                                    ondelete="CASCADE")]


def _stamps() -> list[sa.Column[Any]]:
    return [sa.Column("created_at", Instant, nullable=False),
            sa.Column("updated_at", Instant, nullable=False)]


def upgrade() -> None:
    op.create_table(
        "strategies",
        sa.Column("id", _ID, nullable=False),
        _tenant("strategies"),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategies")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_strategies_tenant_id_code")),
    )
    op.create_table(
        "strategy_versions",
        sa.Column("id", _ID, nullable=False),
        _tenant("strategy_versions"),
        sa.Column("strategy_id", _ID, sa.ForeignKey(
            "strategies.id", name=op.f("fk_strategy_versions_strategy_id_strategies"),
            ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("segment_ids", Json, nullable=False),
        sa.Column("stage_ids", Json, nullable=False),
        sa.Column("entry_rule", Json, nullable=True),
        sa.Column("stop_rule", Json, nullable=True),
        sa.Column("steps", Json, nullable=False),
        sa.Column("in_flight", sa.String(length=16), nullable=True),
        *_stamps(),
        sa.Column("activated_at", Instant, nullable=True),
        sa.Column("retired_at", Instant, nullable=True),
        sa.CheckConstraint("status IN ('draft', 'active', 'retired')",
                           name=op.f("ck_strategy_versions_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_versions")),
        sa.UniqueConstraint("strategy_id", "number",
                            name=op.f("uq_strategy_versions_strategy_id_number")),
    )
    op.create_index("uq_strategy_versions_one_active", "strategy_versions", ["strategy_id"],
                    unique=True, postgresql_where=sa.text("status = 'active'"),
                    sqlite_where=sa.text("status = 'active'"))
    op.create_table(
        "enrollments",
        sa.Column("id", _ID, nullable=False),
        *_debtor("enrollments"),
        sa.Column("strategy_id", _ID, sa.ForeignKey(
            "strategies.id", name=op.f("fk_enrollments_strategy_id_strategies"),
            ondelete="CASCADE"), nullable=False),
        sa.Column("version_id", _ID, sa.ForeignKey(
            "strategy_versions.id", name=op.f("fk_enrollments_version_id_strategy_versions"),
            ondelete="CASCADE"), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("last_step_on", sa.Date(), nullable=True),
        *_stamps(),
        sa.Column("ended_at", Instant, nullable=True),
        sa.CheckConstraint("status IN ('active', 'paused', 'completed', 'stopped', 'exited')",
                           name=op.f("ck_enrollments_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index("uq_enrollments_live", "enrollments", ["strategy_id", "debtor_id"],
                    unique=True, postgresql_where=sa.text(LIVE), sqlite_where=sa.text(LIVE))
    op.create_index("ix_enrollments_tenant_status", "enrollments", ["tenant_id", "status"])
    op.create_index("ix_enrollments_tenant_debtor", "enrollments", ["tenant_id", "debtor_id"])
    op.create_table(
        "actions",
        sa.Column("id", _ID, nullable=False),
        *_debtor("actions"),
        sa.Column("enrollment_id", _ID, sa.ForeignKey(
            "enrollments.id", name=op.f("fk_actions_enrollment_id_enrollments"),
            ondelete="CASCADE"), nullable=False),
        sa.Column("strategy_id", _ID, nullable=False),
        sa.Column("version_id", _ID, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("anchor_on", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("planned_at", Instant, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("superseded_by", _ID, nullable=True),
        sa.Column("verdict", Json, nullable=True),
        sa.Column("outcome", Json, nullable=True),
        *_stamps(),
        sa.CheckConstraint("status IN ('planned', 'superseded', 'deferred', 'denied', "
                           "'dispatched', 'done', 'cancelled')",
                           name=op.f("ck_actions_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint("enrollment_id", "step_index", "due_on",
                            name=op.f("uq_actions_enrollment_id_step_index_due_on")),
    )
    op.create_index("ix_actions_tenant_due", "actions", ["tenant_id", "due_on", "status"])
    op.create_index("ix_actions_tenant_debtor", "actions", ["tenant_id", "debtor_id", "due_on"])
    op.create_table(
        "strategy_settings",
        sa.Column("tenant_id", _ID, sa.ForeignKey(
            "tenants.id", name=op.f("fk_strategy_settings_tenant_id_tenants"),
            ondelete="CASCADE"), nullable=False),
        sa.Column("plan_hour", sa.Integer(), nullable=False),
        sa.Column("last_planned_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_strategy_settings")),
    )


def downgrade() -> None:
    op.drop_table("strategy_settings")
    op.drop_index("ix_actions_tenant_debtor", table_name="actions")
    op.drop_index("ix_actions_tenant_due", table_name="actions")
    op.drop_table("actions")
    op.drop_index("ix_enrollments_tenant_debtor", table_name="enrollments")
    op.drop_index("ix_enrollments_tenant_status", table_name="enrollments")
    op.drop_index("uq_enrollments_live", table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_index("uq_strategy_versions_one_active", table_name="strategy_versions")
    op.drop_table("strategy_versions")
    op.drop_table("strategies")
