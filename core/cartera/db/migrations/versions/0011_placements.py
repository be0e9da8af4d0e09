"""placements: a debtor's current stage and segment in one table, one history for both

Before this revision a debtor's evaluation state lived in four tables: ``debtor_stages``
and ``segment_memberships`` (current state, each with references to the debtor and to the
stage or segment) and ``stage_history`` and ``segment_history`` (append-only logs). A
tenant's first segmentation run wrote a row per debtor into each; at 1M debtors on the
bench machine it took 23-32 s, two thirds of it PostgreSQL's per-row reference checks
(5.5 s per 1M rows for the debtor reference alone), against a 10 s target.

* ``debtor_placements``: one row per placed debtor with its stage (and whether it was set by
  hand, why, by whom, when) and its segment (NULL until the tenant has a rule set). No
  foreign keys: rows are written only by the segmentation code for debtors it has just
  read; stages and segments are retired, never deleted; a debtor's deletion deletes its
  placement, and the two cannot interleave with a run (an advisory lock, see
  ``cartera.segmentation.apply``). The evaluation pass joins one table instead of two.
* ``placement_history``: one row per change, with a stage part (``to_stage_id`` set) and/or
  a segment part (``to_segment_id`` set). A first run writes 1M rows instead of 2M. The
  index on ``run_id`` that nothing read is gone.

Data is carried over: placements from ``debtor_stages`` joined to ``segment_memberships``
(a membership without a stage, possible only for a tenant never evaluated since 0007, is
left for the next evaluation to place again), and both histories in time order, renumbered
(history cursors from before the upgrade no longer apply).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)

_HISTORY_COLUMNS = ("tenant_id, debtor_id, at, from_stage_id, to_stage_id, manual, reason, "
                    "actor, from_segment_id, to_segment_id, run_id")


def upgrade() -> None:
    op.create_table(
        "debtor_placements",
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("stage_id", _ID, nullable=False),
        sa.Column("stage_manual", sa.Boolean(), nullable=False),
        sa.Column("stage_reason", sa.String(length=500), nullable=True),
        sa.Column("stage_set_by", sa.String(length=200), nullable=True),
        sa.Column("stage_set_at", Instant, nullable=False),
        sa.Column("segment_id", _ID, nullable=True),
        sa.Column("segment_entered_at", Instant, nullable=True),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_debtor_placements")),
    )
    op.create_index("ix_debtor_placements_tenant_segment", "debtor_placements",
                    ["tenant_id", "segment_id", "stage_id"])
    op.create_table(
        "placement_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("at", Instant, nullable=False),
        sa.Column("from_stage_id", _ID, nullable=True),
        sa.Column("to_stage_id", _ID, nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("from_segment_id", _ID, nullable=True),
        sa.Column("to_segment_id", _ID, nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_placement_history")),
    )
    op.create_index("ix_placement_history_debtor", "placement_history",
                    ["tenant_id", "debtor_id", "at"])
    op.execute(
        "INSERT INTO debtor_placements (tenant_id, debtor_id, stage_id, stage_manual, "
        "stage_reason, stage_set_by, stage_set_at, segment_id, segment_entered_at) "
        "SELECT ds.tenant_id, ds.debtor_id, ds.stage_id, ds.manual, ds.reason, ds.set_by, "
        "ds.set_at, m.segment_id, m.entered_at FROM debtor_stages ds "
        "LEFT JOIN segment_memberships m ON m.debtor_id = ds.debtor_id")
    op.execute(
        f"INSERT INTO placement_history ({_HISTORY_COLUMNS}) "
        f"SELECT {_HISTORY_COLUMNS} FROM ("
        "SELECT tenant_id, debtor_id, at, from_stage_id, to_stage_id, manual, reason, actor, "
        "NULL AS from_segment_id, NULL AS to_segment_id, NULL AS run_id, 0 AS part, id "
        "FROM stage_history UNION ALL "
        "SELECT tenant_id, debtor_id, at, NULL, NULL, false, NULL, NULL, from_segment_id, "
        "to_segment_id, run_id, 1, id FROM segment_history) h ORDER BY at, part, id")
    for table in ("stage_history", "segment_history", "segment_memberships", "debtor_stages"):
        op.drop_table(table)


def downgrade() -> None:
    op.create_table(
        "debtor_stages",
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("stage_id", _ID, nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("set_by", sa.String(length=200), nullable=True),
        sa.Column("set_at", Instant, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_debtor_stages_tenant_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"],
                                name=op.f("fk_debtor_stages_stage_id_stages"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_debtor_stages")),
    )
    op.create_index("ix_debtor_stages_tenant_stage", "debtor_stages", ["tenant_id", "stage_id"])
    op.create_table(
        "segment_memberships",
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("segment_id", _ID, nullable=False),
        sa.Column("entered_at", Instant, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_segment_memberships_tenant_id_debtors"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"],
                                name=op.f("fk_segment_memberships_segment_id_segments"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_segment_memberships")),
    )
    op.create_index("ix_segment_memberships_tenant_segment", "segment_memberships",
                    ["tenant_id", "segment_id"])
    op.create_table(
        "stage_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("from_stage_id", _ID, nullable=True),
        sa.Column("to_stage_id", _ID, nullable=True),
        sa.Column("at", Instant, nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_history")),
    )
    op.create_index("ix_stage_history_debtor", "stage_history", ["tenant_id", "debtor_id", "at"])
    op.create_table(
        "segment_history",
        sa.Column("id", _ID, nullable=False),
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("from_segment_id", _ID, nullable=True),
        sa.Column("to_segment_id", _ID, nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("at", Instant, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_history")),
    )
    op.create_index("ix_segment_history_debtor", "segment_history",
                    ["tenant_id", "debtor_id", "at"])
    op.create_index("ix_segment_history_run", "segment_history", ["run_id"])
    op.execute(
        "INSERT INTO debtor_stages (tenant_id, debtor_id, stage_id, manual, reason, set_by, "
        "set_at) SELECT p.tenant_id, p.debtor_id, p.stage_id, p.stage_manual, p.stage_reason, "
        "p.stage_set_by, p.stage_set_at FROM debtor_placements p "
        "JOIN debtors d ON d.id = p.debtor_id")
    op.execute(
        "INSERT INTO segment_memberships (tenant_id, debtor_id, segment_id, entered_at) "
        "SELECT p.tenant_id, p.debtor_id, p.segment_id, p.segment_entered_at "
        "FROM debtor_placements p JOIN debtors d ON d.id = p.debtor_id "
        "WHERE p.segment_id IS NOT NULL")
    op.execute(
        "INSERT INTO stage_history (tenant_id, debtor_id, from_stage_id, to_stage_id, at, "
        "manual, reason, actor) SELECT tenant_id, debtor_id, from_stage_id, to_stage_id, at, "
        "manual, reason, actor FROM placement_history WHERE to_stage_id IS NOT NULL "
        "ORDER BY id")
    op.execute(
        "INSERT INTO segment_history (tenant_id, debtor_id, from_segment_id, to_segment_id, "
        "run_id, at) SELECT tenant_id, debtor_id, from_segment_id, to_segment_id, run_id, at "
        "FROM placement_history WHERE to_segment_id IS NOT NULL ORDER BY id")
    op.drop_table("placement_history")
    op.drop_table("debtor_placements")
