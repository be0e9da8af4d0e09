"""procrastinate schema (PostgreSQL only)

Applies procrastinate's packaged schema (tables ``procrastinate_*``, its types, functions
and triggers) so ``cartera db upgrade`` is the one command that prepares a database. On
SQLite jobs run in-process and this revision does nothing.

Upgrading procrastinate later: its own migration files ship in
``procrastinate/sql/migrations``; apply the new ones in a later Alembic revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROP = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables
             WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.sig);
    END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'
               AND (t.typtype = 'e' OR EXISTS (SELECT 1 FROM pg_class c
                                               WHERE c.oid = t.typrelid AND c.relkind = 'c'))
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
    END LOOP;
END $$;
"""


def _execute_script(sql: str) -> None:
    # Raw driver call without parameters: the script holds '%' and ':' that must reach
    # PostgreSQL untouched.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    _execute_script(SchemaManager.get_schema())


def downgrade() -> None:
    # Best effort: removes every procrastinate_* table, function, enum and composite type (and with
    # them any jobs still queued).
    if op.get_bind().dialect.name != "postgresql":
        return
    _execute_script(_DROP)
