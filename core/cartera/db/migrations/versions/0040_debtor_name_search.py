"""reads at framework speed: an index for the debtor search by name

``GET /v1/debtors?q=`` matches part of the name, case-insensitively
(``lower(name) LIKE '%…%'``). On PostgreSQL a trigram GIN index on ``lower(name)``
(``pg_trgm``, a trusted extension) serves that pattern, and, OR-ed with the national id's
index, a bitmap OR of both instead of a scan of the tenant's debtors. SQLite has no index
for a substring match; it keeps scanning (it is the development database).

Revision ID: 0040
Revises: 0034
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0040"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_debtors_name_trgm ON debtors "
               "USING gin (lower(name) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_debtors_name_trgm")
