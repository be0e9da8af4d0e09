"""signing-key rotation, unguessable webhook paths, bounded webhook rejections

* ``signing_keys.retired_at``: a rotated-out key verifies for one token lifetime after it;
  a partial unique index keeps at most one key active (two instances starting on an empty
  database create one key between them). Extra active keys, possible before this
  revision after such a race, are retired now (the newest stays active).
* ``integrations.webhook_token_hash`` / ``webhook_token_sealed``: the public webhook route
  is ``/v1/hooks/{token}``, 32 random bytes base64url, looked up by its SHA-256 and kept
  sealed under the master key (the integration shows its URL). Existing integrations get
  a token now, so their old ``/v1/hooks/{id}`` URL stops answering: re-register it.
* ``webhook_rejections``: refused webhook requests (bad signature...) are counted per
  integration and reason, with first and last time seen, never stored with their body.
  Rejected rows of ``webhook_deliveries`` (bodies included) are deleted.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

import base64
import hashlib
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("signing_keys", sa.Column("retired_at", Instant, nullable=True))
    op.execute("UPDATE signing_keys SET active = false, retired_at = created_at WHERE active "
               "AND kid <> (SELECT kid FROM signing_keys WHERE active "
               "ORDER BY created_at DESC LIMIT 1)")
    op.create_index("uq_signing_keys_one_active", "signing_keys", ["active"], unique=True,
                    postgresql_where=sa.text("active"), sqlite_where=sa.text("active"))

    op.add_column("integrations", sa.Column("webhook_token_hash", sa.String(64), nullable=True))
    op.add_column("integrations",
                  sa.Column("webhook_token_sealed", sa.LargeBinary(), nullable=True))
    op.create_index("ix_integrations_webhook_token_hash", "integrations",
                    ["webhook_token_hash"], unique=True)
    _give_every_integration_a_token()

    op.create_table(
        "webhook_rejections",
        sa.Column("integration_id", _ID,
                  sa.ForeignKey("integrations.id", ondelete="CASCADE",
                                name=op.f("fk_webhook_rejections_integration_id_integrations")),
                  nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", Instant, nullable=False),
        sa.Column("last_seen_at", Instant, nullable=False),
        sa.Column("tenant_id", _ID,
                  sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                name=op.f("fk_webhook_rejections_tenant_id_tenants")),
                  nullable=False),
        sa.PrimaryKeyConstraint("integration_id", "reason", name=op.f("pk_webhook_rejections")),
    )
    op.execute("DELETE FROM webhook_deliveries WHERE NOT signature_valid")


def _give_every_integration_a_token() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, tenant_id FROM integrations")).all()
    if not rows:
        return
    from cartera.crypto import keyring

    sealer = keyring()
    for integration_id, tenant_id in rows:
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")
        token_hash = hashlib.sha256(token).hexdigest()
        sealed = sealer.seal(token, context=f"webhook-token:{tenant_id}".encode())
        bind.execute(sa.text("UPDATE integrations SET webhook_token_hash = :h, "
                             "webhook_token_sealed = :s WHERE id = :id"),
                     {"h": token_hash, "s": sealed, "id": integration_id})


def downgrade() -> None:
    op.drop_table("webhook_rejections")
    op.drop_index("ix_integrations_webhook_token_hash", table_name="integrations")
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("webhook_token_sealed")
        batch.drop_column("webhook_token_hash")
    op.drop_index("uq_signing_keys_one_active", table_name="signing_keys")
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("retired_at")
