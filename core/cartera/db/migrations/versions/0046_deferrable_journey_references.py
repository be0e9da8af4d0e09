"""enrollments and actions: their references DEFERRABLE INITIALLY IMMEDIATE

Every reference of the two tables the planner writes by the hundred thousand
(``enrollments`` → debtors, strategies, strategy versions; ``actions`` → debtors,
enrollments) becomes deferrable, still checked at the end of each statement as before:
nothing changes for a transaction that does not ask. The simulation asks (``SET
CONSTRAINTS ... DEFERRED`` inside the savepoint it rolls back,
:data:`cartera.strategies.simulate.DEFERRED`): its checks are queued and dropped with the
savepoint instead of run row by row. PostgreSQL checks a reference again on every UPDATE
of a row inserted by the same transaction, so a simulated day that plans, advances and
takes as sent 100,000 journeys ran each of those five checks on every row, two or three
times over.

PostgreSQL: ``ALTER CONSTRAINT`` (catalog only, no table rewrite). SQLite: the two tables
are rebuilt in batch mode with the same references marked deferrable (SQLite has no
``SET CONSTRAINTS``; this keeps its schema equal to the models).

Revision ID: 0046
Revises: 0044
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0046"
down_revision: str | None = "0044"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCES: dict[str, list[tuple[str, str, list[str], list[str]]]] = {
    "enrollments": [
        ("fk_enrollments_tenant_id_debtors", "debtors", ["tenant_id", "debtor_id"],
         ["tenant_id", "id"]),
        ("fk_enrollments_strategy_id_strategies", "strategies", ["strategy_id"], ["id"]),
        ("fk_enrollments_version_id_strategy_versions", "strategy_versions", ["version_id"],
         ["id"]),
    ],
    "actions": [
        ("fk_actions_tenant_id_debtors", "debtors", ["tenant_id", "debtor_id"],
         ["tenant_id", "id"]),
        ("fk_actions_enrollment_id_enrollments", "enrollments", ["enrollment_id"], ["id"]),
    ],
}


def _set(deferrable: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        mode = "DEFERRABLE INITIALLY IMMEDIATE" if deferrable else "NOT DEFERRABLE"
        for table, references in REFERENCES.items():
            for name, *_ in references:
                op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} {mode}")
        return
    extra = {"deferrable": True, "initially": "IMMEDIATE"} if deferrable else {}
    for table, references in REFERENCES.items():
        with op.batch_alter_table(table) as batch:
            for name, referred, local, remote in references:
                batch.drop_constraint(name, type_="foreignkey")
                batch.create_foreign_key(name, referred, local, remote, ondelete="CASCADE",
                                         **extra)


def upgrade() -> None:
    _set(True)


def downgrade() -> None:
    _set(False)
