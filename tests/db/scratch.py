"""A scratch database for a migration test, beside the session's own: a file on SQLite, a
new database on the same PostgreSQL server (dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text


@contextmanager
def scratch_database(database_url: str, tmp_path: Path, suffix: str) -> Iterator[
        tuple[str, str]]:
    """``(async URL, sync URL)`` of an empty database named after the session's one plus
    ``suffix``; a PostgreSQL one is dropped on the way out, whatever happened."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", f"sqlite:///{tmp_path / 'm.db'}"
        return
    base, _, name = database_url.rpartition("/")
    url, scratch = f"{base}/{name}{suffix}", f"{name}{suffix}"
    sync_url = url.replace("+asyncpg", "+psycopg")
    admin = create_engine(sync_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{scratch}"'))
        yield url, sync_url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()
