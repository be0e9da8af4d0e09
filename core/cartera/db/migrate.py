"""Programmatic Alembic: upgrade, and the "is this database migrated?" check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


POSTGRESQL_ONLY_INDEXES: frozenset[str] = frozenset()
"""Indexes a migration makes on PostgreSQL only, with an operator class no model can state
for both dialects (none at head: 0040's trigram index of the debtor search by name was
dropped by 0043, names being sealed)."""


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """Autogenerate ignores procrastinate's tables (their schema comes from its own SQL,
    0004) and the PostgreSQL-only indexes of :data:`POSTGRESQL_ONLY_INDEXES`."""
    if type_ == "index" and name in POSTGRESQL_ONLY_INDEXES:
        return False
    return not (type_ == "table" and reflected and compare_to is None
                and (name or "").startswith("procrastinate_"))


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; call from a thread inside async code)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )


class DatabaseNotMigrated(RuntimeError):
    """Raised at start-up when the schema is behind the code."""
