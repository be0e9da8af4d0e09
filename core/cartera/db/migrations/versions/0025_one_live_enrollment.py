"""one live enrollment per debtor, across strategies; fallback attempts of an action

``uq_enrollments_live`` was one live (active or paused) enrollment per debtor *and
strategy*; a debtor whose segment two strategies bind, or who moved between bound
segments while a replan and a pass ran at once, could be worked by two strategies at the
same time. It becomes one live enrollment per debtor: the planner enrolls by strategy
priority and the index refuses the second (``ON CONFLICT DO NOTHING``).

``actions.attempt`` (the index in the step's channel fallback where the action starts: 0
for a planned step, the next channel's for the action planned when the one before failed
or was not delivered in time) joins the unique key, and ``actions.fallback_of`` names the
action it falls back from.

Revision ID: 0025
Revises: 0030
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status IN ('active', 'paused')")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Rows from before: keep the live enrollment of the best strategy (lowest priority
    # number, then the oldest enrollment) and exit the others.
    op.execute(sa.text("""
        UPDATE enrollments SET status = 'exited',
               reason = 'another strategy works this debtor (one live enrollment per debtor)',
               ended_at = CURRENT_TIMESTAMP
         WHERE status IN ('active', 'paused')
           AND EXISTS (
               SELECT 1 FROM enrollments o
                 JOIN strategies so ON so.id = o.strategy_id
                 JOIN strategies sm ON sm.id = enrollments.strategy_id
                WHERE o.debtor_id = enrollments.debtor_id AND o.id <> enrollments.id
                  AND o.status IN ('active', 'paused')
                  AND (so.priority < sm.priority
                       OR (so.priority = sm.priority AND o.id < enrollments.id)))
    """))
    op.drop_index("uq_enrollments_live", table_name="enrollments")
    op.create_index("uq_enrollments_live", "enrollments", ["debtor_id"], unique=True,
                    postgresql_where=LIVE, sqlite_where=LIVE)
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("fallback_of", _ID, nullable=True))
        batch.drop_constraint("uq_actions_enrollment_id_step_index_due_on", type_="unique")
        batch.create_unique_constraint(
            "uq_actions_enrollment_id_step_index_due_on_attempt",
            ["enrollment_id", "step_index", "due_on", "attempt"])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM actions WHERE attempt > 0"))
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("uq_actions_enrollment_id_step_index_due_on_attempt",
                              type_="unique")
        batch.create_unique_constraint("uq_actions_enrollment_id_step_index_due_on",
                                       ["enrollment_id", "step_index", "due_on"])
        batch.drop_column("fallback_of")
        batch.drop_column("attempt")
    op.drop_index("uq_enrollments_live", table_name="enrollments")
    op.create_index("uq_enrollments_live", "enrollments", ["strategy_id", "debtor_id"],
                    unique=True, postgresql_where=LIVE, sqlite_where=LIVE)
