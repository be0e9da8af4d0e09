"""actions: the unique key leads with the debtor; the separate debtor index is dropped

A daily planner pass inserts one action per enrolled debtor, and each inserted action is
an entry in every full index of ``actions``. Two of them did overlapping work:

* ``uq_actions_enrollment_id_step_index_due_on_attempt``: what makes a re-run, or two runs
  at once, plan each action once;
* ``ix_actions_tenant_debtor`` ``(tenant_id, debtor_id, due_on)``: a debtor's actions (the
  planner's rival look-up, the contact policy, explain, feedback, ``GET /v1/actions``).

An action's enrollment fixes its debtor (the reference of migration 0047 is to the
enrollment's ``(id, tenant_id, debtor_id)``), so ``(debtor_id, enrollment_id, step_index,
due_on, attempt)`` is unique exactly when ``(enrollment_id, step_index, due_on, attempt)``
is. One index, ``uq_actions_debtor_id_enrollment_id_step_index_due_on_attempt``, now keeps
the actions unique and finds a debtor's actions; the queries by enrollment name the
enrollment's debtor too. Debtor ids are unique across tenants, so the tenant column led
nothing the queries needed.

Revision ID: 0050
Revises: 0049
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0050"
down_revision: str | None = "0049"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "uq_actions_enrollment_id_step_index_due_on_attempt"
NEW = "uq_actions_debtor_id_enrollment_id_step_index_due_on_attempt"
OLD_COLUMNS = ["enrollment_id", "step_index", "due_on", "attempt"]
DEBTOR_INDEX = "ix_actions_tenant_debtor"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The index built first (reads go on meanwhile), then made the constraint (a brief
        # exclusive lock instead of one for the whole build).
        op.create_index(NEW, "actions", ["debtor_id", *OLD_COLUMNS], unique=True)
        op.execute(f"ALTER TABLE actions ADD CONSTRAINT {NEW} UNIQUE USING INDEX {NEW}")
        op.drop_constraint(OLD, "actions", type_="unique")
    else:
        with op.batch_alter_table("actions") as batch:
            batch.drop_constraint(OLD, type_="unique")
            batch.create_unique_constraint(NEW, ["debtor_id", *OLD_COLUMNS])
    op.drop_index(DEBTOR_INDEX, table_name="actions")


def downgrade() -> None:
    op.create_index(DEBTOR_INDEX, "actions", ["tenant_id", "debtor_id", "due_on"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint(OLD, "actions", OLD_COLUMNS)
        op.drop_constraint(NEW, "actions", type_="unique")
        return
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint(NEW, type_="unique")
        batch.create_unique_constraint(OLD, OLD_COLUMNS)
