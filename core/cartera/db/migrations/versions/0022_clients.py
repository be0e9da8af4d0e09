"""client lifecycle: secret rotation, private_key_jwt, token revocation, assertion replay

* ``oauth_clients``: ``auth_method`` (``client_secret`` or ``private_key_jwt``),
  ``secret_hash`` becomes nullable (``private_key_jwt`` clients have no secret), the
  previous secret's hash and when it stops working (rotation grace period), and the
  client's registered ``jwks`` or ``jwks_uri``.
* ``oauth_revoked_tokens``: RFC 7009 revocations by token ``jti``, kept until the token
  expires.
* ``oauth_used_assertions``: the ``jti`` of every accepted RFC 7523 client assertion, kept
  until the assertion expires, so an assertion cannot be replayed.

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.alter_column("secret_hash", existing_type=sa.String(128), nullable=True)
        batch.add_column(sa.Column("auth_method", sa.String(32), nullable=False,
                                   server_default="client_secret"))
        batch.add_column(sa.Column("previous_secret_hash", sa.String(128), nullable=True))
        batch.add_column(sa.Column("previous_secret_expires_at", Instant, nullable=True))
        batch.add_column(sa.Column("jwks", Json, nullable=True))
        batch.add_column(sa.Column("jwks_uri", sa.String(2000), nullable=True))
    op.create_table(
        "oauth_revoked_tokens",
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_oauth_revoked_tokens")),
    )
    op.create_index("ix_oauth_revoked_tokens_expires_at", "oauth_revoked_tokens",
                    ["expires_at"])
    op.create_table(
        "oauth_used_assertions",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(200), nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name=op.f("pk_oauth_used_assertions")),
    )
    op.create_index("ix_oauth_used_assertions_expires_at", "oauth_used_assertions",
                    ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_used_assertions_expires_at", table_name="oauth_used_assertions")
    op.drop_table("oauth_used_assertions")
    op.drop_index("ix_oauth_revoked_tokens_expires_at", table_name="oauth_revoked_tokens")
    op.drop_table("oauth_revoked_tokens")
    op.execute("DELETE FROM oauth_clients WHERE secret_hash IS NULL")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("jwks_uri")
        batch.drop_column("jwks")
        batch.drop_column("previous_secret_expires_at")
        batch.drop_column("previous_secret_hash")
        batch.drop_column("auth_method")
        batch.alter_column("secret_hash", existing_type=sa.String(128), nullable=False)
