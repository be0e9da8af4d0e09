"""debtor_docs: each debtor's JSON as the list answers it, kept by PostgreSQL

A page of ``GET /v1/debtors`` is 50 debtors with their contact points, related parties and
tags. Building that JSON is most of the database's work for the request, and it is the same
JSON until one of those rows changes. ``debtor_docs`` keeps it (``body``), and counts the
changes (``stamp``):

* every debtor gets a row, with a NULL body, in the statement that inserts it (and here,
  for the debtors there are);
* a statement that inserts, updates or deletes a debtor, contact point, related party or
  tag bumps the stamp of each debtor it touched and clears its body, in the same statement
  (statement triggers with transition tables: one UPDATE a statement, set-based for bulk
  imports);
* the builder (:func:`cartera.portfolio.documents.build_debtor_docs`) locks a batch of
  rows with NULL bodies (skipping rows a change holds), then builds them from the tables
  (``debtor_doc_body``, the one definition of a body, which the list also calls for a
  debtor without one) in a statement whose snapshot follows the locks. A change that
  commits later waits for the lock in its trigger and clears the body again, so a stale
  body is never left.

The list answers a NULL body from the tables, so it is right whether or not the builder has
run. Placements (segment and stage) are not in the body: they change for the whole
portfolio when segmentation runs, and are read with the page.

SQLite gets the table (the models are one schema) but no function, triggers or rows: the
list builds every page there.

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0051"
down_revision: str | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHILDREN = ("contact_points", "related_parties", "debtor_tags")

# Dynamic SQL (EXECUTE) plans each call for its own transition table. A cached plan would
# keep the first call's row count: one cached from a bulk import would hash-join every
# later one-row change against the whole table.
FUNCTIONS = """
-- The body: a DebtorOut's JSON without segment and stage, personal data as stored (sealed).
-- A change to its shape is a migration that replaces this function and clears every body.
CREATE FUNCTION debtor_doc_body(d debtors) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN json_build_object(
    'id', d.id, 'external_ref', d.external_ref, 'kind', d.kind, 'name', d.name,
    'national_id', d.national_id, 'country', d.country, 'subdivision', d.subdivision,
    'timezone', d.timezone, 'zone', d.zone, 'risk_score', d.risk_score,
    'tags', coalesce((SELECT json_agg(t.tag ORDER BY t.tag) FROM debtor_tags t
                      WHERE t.debtor_id = d.id), '[]'::json),
    'attributes', coalesce(d.attributes, '{}'::jsonb),
    'contact_points', coalesce((SELECT json_agg(json_build_object(
        'id', c.id, 'kind', c.kind, 'value', c.value, 'label', c.label,
        'consent', c.consent, 'opted_out_channels', coalesce(c.opted_out_channels, '[]'::jsonb),
        'origin', c.origin, 'preferred', coalesce(c.preferred, false),
        'suppressions', coalesce(c.suppressions, '{}'::jsonb)) ORDER BY c.id)
      FROM contact_points c WHERE c.debtor_id = d.id), '[]'::json),
    'related_parties', coalesce((SELECT json_agg(json_build_object(
        'id', r.id, 'role', r.role, 'name', r.name, 'national_id', r.national_id,
        'phone', r.phone, 'email', r.email, 'related_debtor_id', r.related_debtor_id)
        ORDER BY r.id)
      FROM related_parties r WHERE r.debtor_id = d.id), '[]'::json),
    'created_at', to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'updated_at', to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  )::text;
END $$;

CREATE FUNCTION debtor_docs_insert_debtors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'INSERT INTO debtor_docs (tenant_id, debtor_id) SELECT tenant_id, id FROM new_rows';
  RETURN NULL;
END $$;

CREATE FUNCTION debtor_docs_stale() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  -- TG_ARGV[0]: the debtor's id column of the table ('id' on debtors, else 'debtor_id').
  changed text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    changed := format('SELECT %I FROM new_rows', TG_ARGV[0]);
  ELSIF TG_OP = 'DELETE' THEN
    changed := format('SELECT %I FROM old_rows', TG_ARGV[0]);
  ELSE
    changed := format('SELECT %1$I FROM new_rows UNION SELECT %1$I FROM old_rows', TG_ARGV[0]);
  END IF;
  EXECUTE 'UPDATE debtor_docs SET stamp = stamp + 1, body = NULL WHERE debtor_id IN ('
          || changed || ')';
  RETURN NULL;
END $$;
"""


def _triggers() -> list[str]:
    made = [
        "CREATE TRIGGER debtor_docs_insert AFTER INSERT ON debtors REFERENCING NEW TABLE AS "
        "new_rows FOR EACH STATEMENT EXECUTE FUNCTION debtor_docs_insert_debtors()",
        "CREATE TRIGGER debtor_docs_update AFTER UPDATE ON debtors REFERENCING OLD TABLE AS "
        "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
        "debtor_docs_stale('id')",
    ]
    for table in CHILDREN:
        made += [
            f"CREATE TRIGGER debtor_docs_insert AFTER INSERT ON {table} REFERENCING NEW TABLE "
            "AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION debtor_docs_stale('debtor_id')",
            f"CREATE TRIGGER debtor_docs_update AFTER UPDATE ON {table} REFERENCING OLD TABLE "
            "AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
            "debtor_docs_stale('debtor_id')",
            f"CREATE TRIGGER debtor_docs_delete AFTER DELETE ON {table} REFERENCING OLD TABLE "
            "AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION debtor_docs_stale('debtor_id')",
        ]
    return made


def upgrade() -> None:
    op.create_table(
        "debtor_docs",
        sa.Column("debtor_id", _ID, nullable=False),
        sa.Column("stamp", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "debtor_id"], ["debtors.tenant_id", "debtors.id"],
                                name=op.f("fk_debtor_docs_tenant_id_debtors"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_debtor_docs")),
    )
    op.create_index("ix_debtor_docs_unbuilt", "debtor_docs", ["debtor_id"],
                    postgresql_where=sa.text("body IS NULL"),
                    sqlite_where=sa.text("body IS NULL"))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("INSERT INTO debtor_docs (tenant_id, debtor_id) SELECT tenant_id, id FROM debtors")
    op.execute(FUNCTIONS)
    for statement in _triggers():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("debtors", *CHILDREN):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS debtor_docs_{event} ON {table}")
        op.execute("DROP FUNCTION debtor_docs_stale()")
        op.execute("DROP FUNCTION debtor_docs_insert_debtors()")
        op.execute("DROP FUNCTION debtor_doc_body(debtors)")
    op.drop_index("ix_debtor_docs_unbuilt", table_name="debtor_docs")
    op.drop_table("debtor_docs")
