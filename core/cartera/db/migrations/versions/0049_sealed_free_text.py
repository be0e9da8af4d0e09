"""sealed free text: notes, cancel and reversal reasons, ERP messages, receivers' responses

The free text below can hold personal data (a collector's note naming the debtor's relative
or phone, why a promise, a payment link or a payment was cancelled or reversed, an ERP's
rejection quoting the payer, the body a webhook receiver answered with) and is never
filtered, sorted or matched in SQL. Each column becomes ``LargeBinary`` holding its UTF-8
text sealed with randomized AES-256-GCM under the master key, bound to its field
``table.column`` (:class:`cartera.db.base.SealedString`, as 0044 sealed the row-error
reasons):

* ``promises.note``, ``promises.cancel_reason``;
* ``arrangements.note``, ``arrangements.cancel_reason``;
* ``tasks.note`` (why a task was completed or cancelled);
* ``payment_links.status_reason`` (the reason given when cancelling a link, or why it
  ended);
* ``erp_postings.message`` (the ERP's rejection, or why the last attempt failed);
* ``event_delivery_attempts.response_excerpt`` (the start of a receiver's response body);
* ``payments.reversal_reason``, ``offers.note``, ``reconciliation_exceptions.note`` (the
  resolution's note).

Every column is nullable. Each is replaced as 0044 did: a new nullable column is added, the
rows holding a value are sealed into it a batch of rows at a time (one SELECT and one
executemany UPDATE per batch, in primary-key order), the old column is dropped and the new
one takes its name. The downgrade opens the values back into the former ``VARCHAR(n)``.

Revision ID: 0049
Revises: 0047
Create Date: 2026-12-03
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0049"
down_revision: str | None = "0048"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("promises", "note", 500),
    ("promises", "cancel_reason", 500),
    ("arrangements", "note", 500),
    ("arrangements", "cancel_reason", 500),
    ("tasks", "note", 500),
    ("payment_links", "status_reason", 200),
    ("erp_postings", "message", 1000),
    ("event_delivery_attempts", "response_excerpt", 200),
    ("payments", "reversal_reason", 500),
    ("offers", "note", 500),
    ("reconciliation_exceptions", "note", 500),
)
"""(table, column, the former ``VARCHAR`` length); every table's primary key is ``id``."""


def _rewrite(name: str, source: str, target: str, source_type: Any, target_type: Any,
             transform: Callable[[Any], Any]) -> None:
    """``target = transform(source)`` for every row where ``source`` is not NULL, a batch
    of rows at a time in id order."""
    bind = op.get_bind()
    t = sa.table(name, sa.column("id", sa.BigInteger), sa.column(source, source_type),
                 sa.column(target, target_type))
    write = sa.update(t).where(t.c.id == sa.bindparam("b_id")).values(
        {target: sa.bindparam("b_v", type_=target_type)})
    after = 0
    while True:
        rows = bind.execute(sa.select(t.c.id, t.c[source]).where(
            t.c.id > after, t.c[source].is_not(None)).order_by(t.c.id).limit(BATCH)).all()
        if not rows:
            return
        after = rows[-1][0]
        bind.execute(write, [{"b_id": row[0], "b_v": transform(row[1])} for row in rows])
        if len(rows) < BATCH:
            return


def _swap(name: str, old: str, new: str) -> None:
    """Drop ``old`` and give ``new`` its name."""
    op.execute(f'ALTER TABLE {name} DROP COLUMN "{old}"')
    op.execute(f'ALTER TABLE {name} RENAME COLUMN "{new}" TO "{old}"')


def upgrade() -> None:
    from cartera.crypto import keyring
    from cartera.db.base import payload_context

    ring = keyring()
    for name, column, length in COLUMNS:
        new = f"{column}__sealed"
        op.add_column(name, sa.Column(new, sa.LargeBinary(), nullable=True))
        context = payload_context(f"{name}.{column}")
        _rewrite(name, column, new, sa.String(length), sa.LargeBinary(),
                 lambda value, context=context: ring.seal(str(value).encode(),
                                                          context=context))
        _swap(name, column, new)


def downgrade() -> None:
    from cartera.crypto import keyring
    from cartera.db.base import payload_context

    ring = keyring()
    for name, column, length in reversed(COLUMNS):
        new = f"{column}__plain"
        op.add_column(name, sa.Column(new, sa.String(length), nullable=True))
        context = payload_context(f"{name}.{column}")
        _rewrite(name, column, new, sa.LargeBinary(), sa.String(length),
                 lambda value, context=context: ring.open(bytes(value),
                                                          context=context).decode())
        _swap(name, column, new)
