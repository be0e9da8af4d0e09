"""personal data sealed at rest: debtors, contact points, related parties, interactions

The columns below now hold their values sealed (:class:`cartera.db.base.SealedText`,
deterministic AES-SIV under a key derived from the master key, the ``<table>.<column>``
name as associated data). They become ``TEXT`` (a sealed value is longer than the plaintext
limit) and every existing row is sealed here, in batches of :data:`BATCH` rows by id (on
PostgreSQL one ``UPDATE ... FROM unnest(...)`` per batch). Their btree indexes and unique
constraints stay valid: equal plaintexts seal to equal texts.

* ``ix_debtors_name_trgm`` (0040, PostgreSQL) is dropped: a trigram index over sealed text
  serves nothing. ``GET /v1/debtors?q=`` now matches the whole name by equality, served by
  the new ``ix_debtors_tenant_name``.
* The import staging tables' personal columns become ``TEXT`` too (the pipeline stages
  sealed values). Rows left there by an interrupted import are deleted: its job stages its
  chunks again when it resumes.

The downgrade opens every value again (with the keys configured when it runs) and restores
the former types and the trigram index.

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-02
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0043"
down_revision: str | None = "0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000

SEALED: dict[str, dict[str, int]] = {
    "debtors": {"name": 300, "national_id": 64},
    "contact_points": {"value": 500},
    "related_parties": {"name": 300, "national_id": 64, "phone": 32, "email": 320},
    "interactions": {"address": 500},
}
"""Table -> sealed column -> its former ``VARCHAR`` length."""

STAGED: dict[str, dict[str, int]] = {
    "import_stage_debtors": {"name": 300, "national_id": 64},
    "import_stage_contacts": {"value": 500},
}
_NOT_NULL = {("debtors", "name"), ("contact_points", "value"), ("related_parties", "name"),
             ("import_stage_debtors", "name"), ("import_stage_contacts", "value")}


def _retype(tables: dict[str, dict[str, int]], to_text: bool) -> None:
    for table, columns in tables.items():
        with op.batch_alter_table(table) as batch:
            for column, length in columns.items():
                old, new = sa.String(length), sa.Text()
                batch.alter_column(column, existing_type=new if not to_text else old,
                                   type_=new if to_text else old,
                                   existing_nullable=(table, column) not in _NOT_NULL)


def _rewrite(transform: Callable[[str, str], str]) -> None:
    """Every non-null value of :data:`SEALED` passed through ``transform(value, field)``,
    in batches of :data:`BATCH` rows by id."""
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    for name, columns in SEALED.items():
        cols = list(columns)
        table = sa.table(name, sa.column("id", sa.BigInteger),
                         *[sa.column(c, sa.Text) for c in cols])
        after = 0
        while True:
            rows = bind.execute(
                sa.select(table.c.id, *[table.c[c] for c in cols])
                .where(table.c.id > after).order_by(table.c.id).limit(BATCH)).all()
            if not rows:
                break
            after = rows[-1][0]
            new = [[None if v is None else transform(v, f"{name}.{c}")
                    for c, v in zip(cols, row[1:], strict=True)] for row in rows]
            if postgres:
                arrays = ", ".join(f"CAST(:c{i} AS text[])" for i in range(len(cols)))
                sets = ", ".join(f"{c} = v.{c}" for c in cols)
                params: dict[str, list[object]] = {"ids": [row[0] for row in rows]}
                params.update({f"c{i}": [values[i] for values in new]
                               for i in range(len(cols))})
                bind.execute(sa.text(
                    f"UPDATE {name} AS t SET {sets} FROM unnest(CAST(:ids AS bigint[]), "
                    f"{arrays}) AS v(id, {', '.join(cols)}) WHERE t.id = v.id"), params)
            else:
                bind.execute(
                    sa.update(table).where(table.c.id == sa.bindparam("_id"))
                    .values({c: sa.bindparam(f"_{c}") for c in cols}),
                    [{"_id": row[0], **{f"_{c}": v for c, v in zip(cols, values, strict=True)}}
                     for row, values in zip(rows, new, strict=True)])


def upgrade() -> None:
    from cartera.crypto import pii_cipher

    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP INDEX IF EXISTS ix_debtors_name_trgm")
    for table in STAGED:
        op.execute(f"DELETE FROM {table}")
    _retype(SEALED, to_text=True)
    _retype(STAGED, to_text=True)
    _rewrite(pii_cipher().seal)
    op.create_index("ix_debtors_tenant_name", "debtors", ["tenant_id", "name"])


def downgrade() -> None:
    from cartera.crypto import pii_cipher

    op.drop_index("ix_debtors_tenant_name", table_name="debtors")
    for table in STAGED:
        op.execute(f"DELETE FROM {table}")
    _rewrite(pii_cipher().open)
    _retype(STAGED, to_text=False)
    _retype(SEALED, to_text=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_debtors_name_trgm ON debtors "
                   "USING gin (lower(name) gin_trgm_ops)")
