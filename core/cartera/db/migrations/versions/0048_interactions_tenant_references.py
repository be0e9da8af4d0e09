"""interactions and their events: the tenant through their parent's composite key

A dispatched message inserts an interaction and its first timeline event, and each
foreign key is one check (a look-up and a row lock on the parent) per row: the interaction
had five (tenant, debtor, integration, template, contact point), the event two (tenant,
interaction). The two tenant references now come from the parents:

* ``fk_interactions_tenant_id_debtors``: ``interactions (tenant_id, debtor_id)`` →
  ``debtors (tenant_id, id)`` ``ON DELETE CASCADE`` (as every debtor-owned table): it
  replaces ``fk_interactions_debtor_id_debtors`` (``debtor_id`` → ``debtors (id)``, which let
  an interaction name another tenant's debtor) and ``fk_interactions_tenant_id_tenants``;
  an interaction without a debtor (a reply from an unknown sender) has its ``tenant_id``
  from the integration that received it, checked by no reference (nothing deletes a
  tenant);
* ``uq_interactions_id_tenant_id``: ``interactions (id, tenant_id)`` unique (``id`` alone
  is), what the events' reference needs;
* ``fk_interaction_events_interaction_id_interactions``: now ``interaction_events
  (interaction_id, tenant_id)`` → ``interactions (id, tenant_id)`` ``ON DELETE CASCADE``
  (it was ``interaction_id`` → ``interactions (id)``), and
  ``fk_interaction_events_tenant_id_tenants`` dropped: an event is now always of its
  interaction's tenant (before, only of some tenant).

* ``ix_interactions_provider_message`` (``integration_id, provider_message_id``) becomes
  partial, ``WHERE provider_message_id IS NOT NULL``: its one reader looks a receipt's
  provider message id up by equality, and a queued message has none yet (one index entry
  less per enqueued message).

On PostgreSQL the new references are added ``NOT VALID`` and then validated (existing rows
are checked without blocking writes meanwhile). SQLite rebuilds the two tables in batch
mode.

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0048"
down_revision: str | None = "0047"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEBTOR_FK = "fk_interactions_tenant_id_debtors"
UQ = "uq_interactions_id_tenant_id"
EVENT_FK = "fk_interaction_events_interaction_id_interactions"
OLD_INTERACTION = [
    ("fk_interactions_debtor_id_debtors", "debtors", ["debtor_id"], ["id"]),
    ("fk_interactions_tenant_id_tenants", "tenants", ["tenant_id"], ["id"]),
]
EVENT_TENANT_FK = "fk_interaction_events_tenant_id_tenants"
PROVIDER_INDEX = "ix_interactions_provider_message"
HAS_PROVIDER_ID = sa.text("provider_message_id IS NOT NULL")


def _provider_index(partial: bool) -> None:
    op.drop_index(PROVIDER_INDEX, table_name="interactions")
    where = {"postgresql_where": HAS_PROVIDER_ID, "sqlite_where": HAS_PROVIDER_ID} \
        if partial else {}
    op.create_index(PROVIDER_INDEX, "interactions", ["integration_id", "provider_message_id"],
                    **where)  # type: ignore[arg-type]


def upgrade() -> None:
    _provider_index(partial=True)
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint(UQ, "interactions", ["id", "tenant_id"])
        for name, *_ in OLD_INTERACTION:
            op.drop_constraint(name, "interactions", type_="foreignkey")
        op.drop_constraint(EVENT_FK, "interaction_events", type_="foreignkey")
        op.drop_constraint(EVENT_TENANT_FK, "interaction_events", type_="foreignkey")
        op.execute(f"ALTER TABLE interactions ADD CONSTRAINT {DEBTOR_FK} FOREIGN KEY "
                   "(tenant_id, debtor_id) REFERENCES debtors (tenant_id, id) "
                   "ON DELETE CASCADE NOT VALID")
        op.execute(f"ALTER TABLE interaction_events ADD CONSTRAINT {EVENT_FK} FOREIGN KEY "
                   "(interaction_id, tenant_id) REFERENCES interactions (id, tenant_id) "
                   "ON DELETE CASCADE NOT VALID")
        op.execute(f"ALTER TABLE interactions VALIDATE CONSTRAINT {DEBTOR_FK}")
        op.execute(f"ALTER TABLE interaction_events VALIDATE CONSTRAINT {EVENT_FK}")
        return
    with op.batch_alter_table("interactions") as batch:
        batch.create_unique_constraint(UQ, ["id", "tenant_id"])
        for name, *_ in OLD_INTERACTION:
            batch.drop_constraint(name, type_="foreignkey")
        batch.create_foreign_key(DEBTOR_FK, "debtors", ["tenant_id", "debtor_id"],
                                 ["tenant_id", "id"], ondelete="CASCADE")
    with op.batch_alter_table("interaction_events") as batch:
        batch.drop_constraint(EVENT_FK, type_="foreignkey")
        batch.drop_constraint(EVENT_TENANT_FK, type_="foreignkey")
        batch.create_foreign_key(EVENT_FK, "interactions", ["interaction_id", "tenant_id"],
                                 ["id", "tenant_id"], ondelete="CASCADE")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(EVENT_FK, "interaction_events", type_="foreignkey")
        op.drop_constraint(DEBTOR_FK, "interactions", type_="foreignkey")
        op.create_foreign_key(EVENT_FK, "interaction_events", "interactions",
                              ["interaction_id"], ["id"], ondelete="CASCADE")
        op.create_foreign_key(EVENT_TENANT_FK, "interaction_events", "tenants", ["tenant_id"],
                              ["id"], ondelete="CASCADE")
        for name, referred, local, remote in OLD_INTERACTION:
            op.create_foreign_key(name, "interactions", referred, local, remote,
                                  ondelete="CASCADE")
        op.drop_constraint(UQ, "interactions", type_="unique")
    else:
        with op.batch_alter_table("interaction_events") as batch:
            batch.drop_constraint(EVENT_FK, type_="foreignkey")
            batch.create_foreign_key(EVENT_FK, "interactions", ["interaction_id"], ["id"],
                                     ondelete="CASCADE")
            batch.create_foreign_key(EVENT_TENANT_FK, "tenants", ["tenant_id"], ["id"],
                                     ondelete="CASCADE")
        with op.batch_alter_table("interactions") as batch:
            batch.drop_constraint(DEBTOR_FK, type_="foreignkey")
            for name, referred, local, remote in OLD_INTERACTION:
                batch.create_foreign_key(name, referred, local, remote, ondelete="CASCADE")
            batch.drop_constraint(UQ, type_="unique")
    _provider_index(partial=False)
