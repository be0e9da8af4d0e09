"""enrollments: fillfactor 50 (PostgreSQL), so the planner's advance updates in place

The daily pass's advance rewrites every enrollment whose step moves (``step_index``,
``last_step_on``, ``updated_at``: no indexed column). With full pages each new row version
goes to another page and every index of the table gets an entry; with half the page free a
version stays on its page (a HOT update) and no index is touched. The table takes about
twice the pages. Applies to the pages written from now on: existing tables get it from a
``VACUUM FULL enrollments`` (or pg_repack) at a quiet moment, not from this migration (it
would lock the table while it rewrites it).

Revision ID: 0042
Revises: 0036
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0042"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE enrollments SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE enrollments RESET (fillfactor)")
