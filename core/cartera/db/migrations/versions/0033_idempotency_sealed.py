"""idempotency: stored responses sealed at rest, and an index for purging expired keys

* ``idempotency_keys.body`` now holds the response sealed under the master key (a response
  may carry a one-time secret). Bodies stored before are sealed here; the downgrade opens
  them again.
* ``ix_idempotency_keys_created_at``: the job that removes expired keys finds them by age.

Revision ID: 0033
Revises: 0021
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = sa.table("idempotency_keys", sa.column("tenant_id", sa.Integer),
                 sa.column("client_id", sa.String), sa.column("key", sa.String),
                 sa.column("body", sa.LargeBinary))


def _context(row: sa.Row) -> bytes:
    return f"idempotency:{row.tenant_id}:{row.client_id}:{row.key}".encode()


def _rewrite(transform: str) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_KEYS).where(_KEYS.c.body.is_not(None))).all()
    if not rows:
        return
    from cartera.crypto import keyring

    ring = keyring()
    for row in rows:
        body = (ring.seal(row.body, context=_context(row)) if transform == "seal"
                else ring.open(row.body, context=_context(row)))
        bind.execute(sa.update(_KEYS).where(
            _KEYS.c.tenant_id == row.tenant_id, _KEYS.c.client_id == row.client_id,
            _KEYS.c.key == row.key).values(body=body))


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    _rewrite("seal")


def downgrade() -> None:
    _rewrite("open")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
