"""imports: how a CSV was read, when its upload was deleted, row warnings beside errors

* ``imports.encoding``, ``imports.delimiter``, ``imports.decimal_mark``: what the upload
  was read with (given, or detected when it arrived); ``NULL`` for rows from before this
  revision (read as UTF-8, ``,`` and ``.``, as they were).
* ``imports.file_deleted_at``: when the uploaded file (debtor personal data) was deleted,
  at the end of the import or after the retention period.
* ``import_row_errors.severity``: ``error`` (the row was rejected) or ``warning`` (an
  optional field was rejected, the row kept).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("encoding", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("delimiter", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("decimal_mark", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("file_deleted_at", sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("import_row_errors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("severity", sa.String(length=16), nullable=False,
                                      server_default="error"))


def downgrade() -> None:
    with op.batch_alter_table("import_row_errors", schema=None) as batch_op:
        batch_op.drop_column("severity")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_column("file_deleted_at")
        batch_op.drop_column("decimal_mark")
        batch_op.drop_column("delimiter")
        batch_op.drop_column("encoding")
