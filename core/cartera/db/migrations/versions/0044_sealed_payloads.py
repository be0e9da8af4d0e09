"""sealed payloads: stored payloads carrying personal data, sealed at rest (AES-256-GCM)

The columns below hold personal data (senders' numbers, message text, names and contact
values in audited changes and in events, payers in providers' views) and are never queried
inside SQL. They become ``LargeBinary`` holding the value sealed with randomized AES-256-GCM
under the master key, bound to its field (``table.column``; see
:class:`cartera.db.base.SealedJson`, ``SealedBytes``, ``SealedString``):

* ``webhook_deliveries.url``, ``.headers``, ``.body`` (the raw inbound request);
* ``webhook_events.payload``; ``interactions.variables``, ``.content``,
  ``.failure_reason``; ``interaction_events.detail``; ``audit_log.changes``; ``reconciliation_exceptions.provider_view``;
  ``import_row_errors.reason`` and ``erp_sync_row_errors.reason`` (they quote rejected
  values: phones, e-mails).

``outbox_events.data_sealed`` (new): the data of events that may carry personal data (every
audited change's event); ``outbox_events.data`` keeps the data set-based writers build in
SQL, which carries none (statuses, stage codes, segment ids). Existing events' data is all
moved into ``data_sealed`` (``data`` becomes ``{}``); the downgrade moves it back.

Each column is replaced by a sealed one: a new column is added, the existing rows are sealed
into it a batch of rows at a time (one SELECT and one executemany UPDATE per batch, in
primary-key order), the old column is dropped and the new one takes its name. On SQLite a
NOT NULL column is added with an empty default (SQLite cannot add a NOT NULL column without
one, nor change it afterwards); on PostgreSQL it is added nullable and set NOT NULL once
filled. A JSON ``null`` in the nullable ``interactions.content`` becomes SQL ``NULL``. The
downgrade opens the values back into the original types the same way.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0044"
down_revision: str | None = "0043"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000

# (table, primary key, column, kind, nullable): kind is what the column held before
# ("json"; "text", sealed as its UTF-8 bytes; "bytes"); "length": a String(n) before.
COLUMNS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("webhook_deliveries", "id", "url", "text", False),
    ("webhook_deliveries", "id", "headers", "json", False),
    ("webhook_deliveries", "id", "body", "bytes", False),
    ("webhook_events", "id", "payload", "json", False),
    ("interactions", "id", "variables", "json", False),
    ("interactions", "id", "content", "json", True),
    ("interactions", "id", "failure_reason", "text", True),
    ("interaction_events", "id", "detail", "json", False),
    ("audit_log", "id", "changes", "json", False),
    ("reconciliation_exceptions", "id", "provider_view", "json", False),
    ("import_row_errors", "id", "reason", "text1000", False),
    ("erp_sync_row_errors", "id", "reason", "text1000", False),
)

_EMPTY = {"json": "'{}'", "text": "''", "text1000": "''", "bytes": "X''"}


def _plain_type(kind: str) -> Any:
    if kind == "json":
        return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    if kind == "text1000":
        return sa.String(1000)
    return sa.Text() if kind == "text" else sa.LargeBinary()


def _add(name: str, column: str, type_: Any, nullable: bool, empty: str) -> None:
    """Add ``column``: nullable on PostgreSQL until filled; on SQLite NOT NULL with an
    empty default when it must be NOT NULL (it cannot be made so afterwards)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column(name, sa.Column(column, type_, nullable=nullable or not sqlite,
                                  server_default=None if nullable or not sqlite
                                  else sa.text(empty)))


def _swap(name: str, old: str, new: str, nullable: bool) -> None:
    """Drop ``old`` and give ``new`` its name (and NOT NULL on PostgreSQL)."""
    op.execute(f'ALTER TABLE {name} DROP COLUMN "{old}"')
    op.execute(f'ALTER TABLE {name} RENAME COLUMN "{new}" TO "{old}"')
    if not nullable and op.get_bind().dialect.name == "postgresql":
        op.execute(f'ALTER TABLE {name} ALTER COLUMN "{old}" SET NOT NULL')


def _rewrite(name: str, pk: str, source: Any, target: str, target_value: Any,
             transform: Any) -> None:
    """``target = transform(source)`` for every row, a batch of rows at a time."""
    bind = op.get_bind()
    t = sa.table(name, sa.column(pk), sa.column(target))
    write = sa.update(t).where(t.c[pk] == sa.bindparam("b_pk")).values(
        {target: target_value})
    after: Any = None
    while True:
        stmt = sa.select(sa.column(pk), source).select_from(sa.table(name)).order_by(
            sa.column(pk)).limit(BATCH)
        if after is not None:
            stmt = stmt.where(sa.column(pk) > after)
        rows = bind.execute(stmt).all()
        if not rows:
            return
        after = rows[-1][0]
        bind.execute(write, [{"b_pk": row[0], "b_v": transform(row[1])} for row in rows])
        if len(rows) < BATCH:
            return


_OUTBOX_FIELD = "outbox_events.data_sealed"


def _outbox_up(ring: Any, postgres: bool) -> None:
    from cartera.db.base import payload_context

    op.add_column("outbox_events", sa.Column("data_sealed", sa.LargeBinary(), nullable=True))
    context = payload_context(_OUTBOX_FIELD)
    bind = op.get_bind()
    t = sa.table("outbox_events", sa.column("seq"), sa.column("data_sealed"),
                 sa.column("data"))
    write = sa.update(t).where(t.c.seq == sa.bindparam("b_pk")).values(
        data_sealed=sa.bindparam("b_v", type_=sa.LargeBinary), data=sa.text("'{}'"))
    data = sa.cast(t.c.data, sa.Text) if postgres else t.c.data
    after = 0
    while True:  # events whose data is not ``{}``, a batch at a time
        rows = bind.execute(sa.select(t.c.seq, data).where(
            t.c.seq > after, data != "{}").order_by(t.c.seq).limit(BATCH)).all()
        if not rows:
            return
        after = rows[-1][0]
        bind.execute(write, [{"b_pk": seq, "b_v": ring.seal(
            value.encode() if isinstance(value, str) else bytes(value), context=context)}
            for seq, value in rows])


def _outbox_down(ring: Any, postgres: bool) -> None:
    from cartera.db.base import payload_context

    context = payload_context(_OUTBOX_FIELD)
    bind = op.get_bind()
    t = sa.table("outbox_events", sa.column("seq"),
                 sa.column("data_sealed", sa.LargeBinary), sa.column("data"))
    value: Any = sa.bindparam("b_v", type_=sa.Text)
    write = sa.update(t).where(t.c.seq == sa.bindparam("b_pk")).values(
        data=sa.cast(value, postgresql.JSONB) if postgres else value)
    after = 0
    while True:
        rows = bind.execute(sa.select(t.c.seq, t.c.data_sealed).where(
            t.c.seq > after, t.c.data_sealed.is_not(None)).order_by(t.c.seq)
            .limit(BATCH)).all()
        if not rows:
            break
        after = rows[-1][0]
        bind.execute(write, [{"b_pk": seq, "b_v": ring.open(bytes(sealed), context=context)
                              .decode()} for seq, sealed in rows])
    op.execute("ALTER TABLE outbox_events DROP COLUMN data_sealed")


def upgrade() -> None:
    from cartera.crypto import keyring
    from cartera.db.base import payload_context

    ring = keyring()
    postgres = op.get_bind().dialect.name == "postgresql"
    _outbox_up(ring, postgres)
    for name, pk, column, kind, nullable in COLUMNS:
        new = f"{column}__sealed"
        _add(name, new, sa.LargeBinary(), nullable, "X''")
        context = payload_context(f"{name}.{column}")

        def seal(value: Any, kind: str = kind, context: bytes = context,
                 nullable: bool = nullable) -> bytes | None:
            if value is None:
                return None
            if kind == "bytes":
                data = bytes(value)
            elif kind.startswith("text"):
                data = str(value).encode()
            else:
                data = value.encode() if isinstance(value, str) else bytes(value)
                if data.strip() == b"null" and nullable:
                    return None
            return ring.seal(data, context=context)

        source: Any = sa.column(column)
        if kind == "json":  # the stored JSON text, as it is (no decoding)
            source = sa.cast(sa.column(column), sa.Text) if postgres else source
        _rewrite(name, pk, source.label("v"), new,
                 sa.bindparam("b_v", type_=sa.LargeBinary), seal)
        _swap(name, column, new, nullable)


def downgrade() -> None:
    from cartera.crypto import keyring
    from cartera.db.base import payload_context

    ring = keyring()
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, pk, column, kind, nullable in reversed(COLUMNS):
        new = f"{column}__plain"
        _add(name, new, _plain_type(kind), nullable, _EMPTY[kind])
        context = payload_context(f"{name}.{column}")

        def unseal(value: Any, kind: str = kind, context: bytes = context) -> Any:
            if value is None:
                return None
            data = ring.open(bytes(value), context=context)
            if kind == "bytes":
                return data
            return data.decode()

        if kind == "json":
            value: Any = sa.bindparam("b_v", type_=sa.Text)
            value = sa.cast(value, postgresql.JSONB) if postgres else value
        else:
            value = sa.bindparam("b_v", type_=sa.LargeBinary if kind == "bytes" else sa.Text)
        _rewrite(name, pk, sa.column(column, sa.LargeBinary).label("v"), new, value, unseal)
        _swap(name, column, new, nullable)
    _outbox_down(ring, postgres)
