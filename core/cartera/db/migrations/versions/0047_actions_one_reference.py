"""actions: one foreign key, to their enrollment's (id, tenant_id, debtor_id); decisions: none

An action had two foreign keys, ``enrollment_id`` → ``enrollments (id)`` and ``(tenant_id,
debtor_id)`` → ``debtors (tenant_id, id)``: two checks (each a look-up and a row lock on the
parent) per inserted action, and a daily planner pass inserts one action per enrolled
debtor. Both guarantees now come from one reference:

* ``uq_enrollments_id_tenant_id_debtor_id``: ``enrollments (id, tenant_id, debtor_id)``
  unique (``id`` alone is), what the reference needs;
* ``fk_actions_enrollment_id_enrollments``: ``actions (enrollment_id, tenant_id,
  debtor_id)`` → ``enrollments (id, tenant_id, debtor_id)`` ``ON DELETE CASCADE``: an
  action names its enrollment's tenant and debtor, and the enrollment's own reference to
  ``debtors (tenant_id, id)`` keeps it from naming another tenant's debtor; deleting a
  debtor still deletes their actions (through their enrollments);
* ``fk_actions_tenant_id_debtors`` dropped.

* ``fk_compliance_decisions_tenant_id_tenants`` dropped: the decisions are history,
  documented as having no foreign key (each one more check per row: a daily pass writes a
  decision row per planned contact); the tenant mixin had given them this one.

The new key is ``DEFERRABLE INITIALLY IMMEDIATE``, as 0046 made the references it replaces.
On PostgreSQL it is added ``NOT VALID`` and then validated (the existing rows are
checked without blocking writes to the tables meanwhile).

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0047"
down_revision: str | None = "0046"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_actions_enrollment_id_enrollments"
UQ = "uq_enrollments_id_tenant_id_debtor_id"
DECISIONS_FK = "fk_compliance_decisions_tenant_id_tenants"
DEFERRABLE = {"deferrable": True, "initially": "IMMEDIATE"}
"""As 0046 made the journey tables' references (the simulation defers them)."""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint(UQ, "enrollments", ["id", "tenant_id", "debtor_id"])
        op.drop_constraint(FK, "actions", type_="foreignkey")
        op.drop_constraint("fk_actions_tenant_id_debtors", "actions", type_="foreignkey")
        op.execute(f"ALTER TABLE actions ADD CONSTRAINT {FK} FOREIGN KEY (enrollment_id, "
                   "tenant_id, debtor_id) REFERENCES enrollments (id, tenant_id, debtor_id) "
                   "ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE NOT VALID")
        op.execute(f"ALTER TABLE actions VALIDATE CONSTRAINT {FK}")
        op.drop_constraint(DECISIONS_FK, "compliance_decisions", type_="foreignkey")
        return
    with op.batch_alter_table("compliance_decisions") as batch:
        batch.drop_constraint(DECISIONS_FK, type_="foreignkey")
    with op.batch_alter_table("enrollments") as batch:
        batch.create_unique_constraint(UQ, ["id", "tenant_id", "debtor_id"])
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_constraint("fk_actions_tenant_id_debtors", type_="foreignkey")
        batch.create_foreign_key(FK, "enrollments", ["enrollment_id", "tenant_id", "debtor_id"],
                                 ["id", "tenant_id", "debtor_id"], ondelete="CASCADE",
                                 **DEFERRABLE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(DECISIONS_FK, "compliance_decisions", "tenants", ["tenant_id"],
                              ["id"], ondelete="CASCADE")
        op.drop_constraint(FK, "actions", type_="foreignkey")
        op.create_foreign_key(FK, "actions", "enrollments", ["enrollment_id"], ["id"],
                              ondelete="CASCADE", **DEFERRABLE)
        op.create_foreign_key("fk_actions_tenant_id_debtors", "actions", "debtors",
                              ["tenant_id", "debtor_id"], ["tenant_id", "id"],
                              ondelete="CASCADE", **DEFERRABLE)
        op.drop_constraint(UQ, "enrollments", type_="unique")
        return
    with op.batch_alter_table("compliance_decisions") as batch:
        batch.create_foreign_key(DECISIONS_FK, "tenants", ["tenant_id"], ["id"],
                                 ondelete="CASCADE")
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.create_foreign_key(FK, "enrollments", ["enrollment_id"], ["id"],
                                 ondelete="CASCADE", **DEFERRABLE)
        batch.create_foreign_key("fk_actions_tenant_id_debtors", "debtors",
                                 ["tenant_id", "debtor_id"], ["tenant_id", "id"],
                                 ondelete="CASCADE", **DEFERRABLE)
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_constraint(UQ, type_="unique")
