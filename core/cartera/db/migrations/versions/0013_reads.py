"""reads: every tenant has its stages from the start; why a webhook event was ignored;
indexes for the audit trail's filters

* Default collection stages used to be created by the first request that read them (a GET
  that wrote). They are now created with the tenant; this gives them to every existing
  tenant that has none. The downgrade keeps them (they are a tenant's configuration).
* ``webhook_events.reason``: why an event was ignored (payment events, until payments from
  providers are applied, are ``ignored`` instead of ``processed`` with no effect).
* ``GET /v1/audit`` lists a tenant's entries in id order, filtered by actor or by time: one
  index for each (``(tenant_id, actor, id)`` and ``(tenant_id, at)``); the filter by object
  uses ``ix_audit_log_resource``.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The defaults of cartera.segmentation.stages.DEFAULT_STAGES when this revision was written.
_DEFAULT_STAGES = (("preventive", "Preventive", 0, 0, 0),
                   ("administrative", "Administrative", 1, 1, 30),
                   ("extrajudicial", "Extrajudicial", 2, 31, 180),
                   ("judicial", "Judicial", 3, 181, None))


def upgrade() -> None:
    defaults = " UNION ALL ".join(
        f"SELECT '{code}' AS code, '{name}' AS name, {position} AS position, {low} AS min_dpd, "
        f"{'NULL' if high is None else high} AS max_dpd"
        for code, name, position, low, high in _DEFAULT_STAGES)
    op.get_bind().execute(sa.text(
        "INSERT INTO stages (tenant_id, code, name, position, min_dpd, max_dpd, active, "
        "created_at, updated_at) "
        f"SELECT t.id, d.code, d.name, d.position, d.min_dpd, d.max_dpd, :true, :now, :now "
        f"FROM tenants t CROSS JOIN ({defaults}) d "
        "WHERE NOT EXISTS (SELECT 1 FROM stages s WHERE s.tenant_id = t.id)").bindparams(
        sa.bindparam("now", type_=sa.DateTime(timezone=True)),
        sa.bindparam("true", type_=sa.Boolean())), {"now": datetime.now(UTC), "true": True})
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=200), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_tenant_actor", ["tenant_id", "actor", "id"])
        batch_op.create_index("ix_audit_log_tenant_at", ["tenant_id", "at"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_tenant_at")
        batch_op.drop_index("ix_audit_log_tenant_actor")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_column("reason")
