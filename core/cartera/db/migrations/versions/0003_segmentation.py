"""segmentation: segments, memberships, membership history, runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _tenant() -> sa.Column[int]:
    return sa.Column("tenant_id", _ID, nullable=False)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                   name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule", _JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant(),
        _tenant_fk("segments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_segments_tenant_id_code")),
    )
    op.create_index("ix_segments_tenant_active_position", "segments",
                    ["tenant_id", "active", "position"])
    op.create_table(
        "segment_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("job_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("ruleset_version", sa.Integer(), nullable=True),
        sa.Column("debtors", sa.Integer(), nullable=False),
        sa.Column("moves", sa.Integer(), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _tenant(),
        _tenant_fk("segment_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_runs")),
    )
    op.create_index("ix_segment_runs_tenant", "segment_runs", ["tenant_id", "id"])
    op.create_table(
        "segment_memberships",
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("segment_id", _ID, nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        _tenant(),
        _tenant_fk("segment_memberships"),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"],
                                name=op.f("fk_segment_memberships_debtor_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"],
                                name=op.f("fk_segment_memberships_segment_id_segments"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_segment_memberships")),
    )
    op.create_index("ix_segment_memberships_tenant_segment", "segment_memberships",
                    ["tenant_id", "segment_id"])
    op.create_table(
        "segment_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("from_segment_id", _ID, nullable=True),
        sa.Column("to_segment_id", _ID, nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        _tenant(),
        _tenant_fk("segment_history"),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"],
                                name=op.f("fk_segment_history_debtor_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["from_segment_id"], ["segments.id"],
                                name=op.f("fk_segment_history_from_segment_id_segments"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["to_segment_id"], ["segments.id"],
                                name=op.f("fk_segment_history_to_segment_id_segments"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["segment_runs.id"],
                                name=op.f("fk_segment_history_run_id_segment_runs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_history")),
    )
    op.create_index("ix_segment_history_debtor", "segment_history",
                    ["tenant_id", "debtor_id", "at"])
    op.create_index("ix_segment_history_run", "segment_history", ["run_id"])


def downgrade() -> None:
    op.drop_table("segment_history")
    op.drop_table("segment_memberships")
    op.drop_table("segment_runs")
    op.drop_table("segments")
