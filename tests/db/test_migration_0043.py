"""0043: personal data already stored in plaintext is sealed; the downgrade opens it again.

Runs on SQLite and, when ``CARTERA_TEST_DATABASE_URL`` is set, on a scratch PostgreSQL
database of its own (created and dropped here: a migration from 0042 cannot run on the
session's migrated database)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from cartera.crypto import PiiCipher, pii_cipher
from cartera.db import migrate
from cartera.settings import normalise_database_url

_ROWS = [
    "INSERT INTO tenants (id, slug, name, country, default_currency, timezone, created_at) "
    "VALUES (1, 'a', 'A', 'PE', 'PEN', 'America/Lima', '2026-01-01')",
    "INSERT INTO debtors (id, tenant_id, external_ref, kind, name, national_id, country, "
    "timezone, attributes, created_at, updated_at) VALUES "
    "(10, 1, 'C-1', 'person', 'Ana Pérez', '45678912', 'PE', 'America/Lima', '{}', "
    "'2026-01-01', '2026-01-01'), "
    "(11, 1, 'C-2', 'person', 'Luis Quispe', NULL, 'PE', 'America/Lima', '{}', "
    "'2026-01-01', '2026-01-01')",
    "INSERT INTO contact_points (id, tenant_id, debtor_id, kind, value, consent, "
    "opted_out_channels, origin, preferred, created_at, updated_at) VALUES "
    "(20, 1, 10, 'phone', '+51987654321', 'granted', '[]', 'debtor_provided', TRUE, "
    "'2026-01-01', '2026-01-01'), "
    "(21, 1, 11, 'email', 'luis@example.pe', 'unknown', '[]', 'found', FALSE, "
    "'2026-01-01', '2026-01-01')",
    "INSERT INTO related_parties (id, tenant_id, debtor_id, role, name, national_id, phone, "
    "email, created_at) VALUES (30, 1, 10, 'guarantor', 'Rosa Pérez', '12345678', "
    "'+51912345678', NULL, '2026-01-01')",
    "INSERT INTO interactions (id, tenant_id, debtor_id, direction, channel, status, "
    "address, obligation_ids, variables, \"trigger\", attempts, created_at, updated_at) "
    "VALUES (40, 1, 10, 'outbound', 'sms', 'sent', '+51987654321', '[]', '{}', '{}', 0, "
    "'2026-01-01', '2026-01-01'), "
    "(41, 1, 10, 'outbound', 'call', 'sent', NULL, '[]', '{}', '{}', 0, "
    "'2026-01-01', '2026-01-01')",
]
_PLAIN = {
    ("debtors", "name"): {10: "Ana Pérez", 11: "Luis Quispe"},
    ("debtors", "national_id"): {10: "45678912", 11: None},
    ("contact_points", "value"): {20: "+51987654321", 21: "luis@example.pe"},
    ("related_parties", "name"): {30: "Rosa Pérez"},
    ("related_parties", "national_id"): {30: "12345678"},
    ("related_parties", "phone"): {30: "+51912345678"},
    ("related_parties", "email"): {30: None},
    ("interactions", "address"): {40: "+51987654321", 41: None},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the async URL migrations run on, a sync URL to look at the rows with)."""
    if request.param == "sqlite":
        path = tmp_path / "m.db"
        yield f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}"
        return
    configured = os.environ.get("CARTERA_TEST_DATABASE_URL", "")
    if not configured.startswith("postgresql"):
        pytest.skip("PostgreSQL only with CARTERA_TEST_DATABASE_URL")
    base = sa.engine.make_url(normalise_database_url(configured))
    name = f"{base.database}_m0043_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.set(drivername="postgresql+psycopg"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = base.set(database=name)
        yield (url.render_as_string(hide_password=False),
               url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _stored(sync_url: str) -> dict[tuple[str, str], dict[int, str | None]]:
    engine = sa.create_engine(sync_url)
    try:
        with engine.connect() as conn:
            return {(t, c): dict(conn.exec_driver_sql(  # type: ignore[arg-type]
                f"SELECT id, {c} FROM {t} ORDER BY id").all()) for t, c in _PLAIN}
    finally:
        engine.dispose()


def test_0043_seals_what_is_stored_and_the_downgrade_opens_it(
        scratch: tuple[str, str]) -> None:
    url, sync_url = scratch
    migrate.upgrade(url, "0042")
    engine = sa.create_engine(sync_url)
    with engine.begin() as conn:
        for sql in _ROWS:
            conn.exec_driver_sql(sql)
    engine.dispose()
    migrate.upgrade(url, "0043")
    cipher = pii_cipher()
    sealed = _stored(sync_url)
    for (table, column), values in _PLAIN.items():
        for row_id, plain in values.items():
            stored = sealed[(table, column)][row_id]
            if plain is None:
                assert stored is None
                continue
            assert stored is not None and stored.startswith(PiiCipher.MARKER)
            assert plain not in stored
            assert cipher.open(stored, f"{table}.{column}") == plain
    # Deterministic: the same phone in two tables seals differently (its field), the same
    # field's lookups find it (the indexes stay valid).
    assert sealed[("contact_points", "value")][20] == cipher.seal("+51987654321",
                                                                  "contact_points.value")
    assert sealed[("interactions", "address")][40] != sealed[("contact_points", "value")][20]
    command.downgrade(migrate.alembic_config(url), "0042")
    assert _stored(sync_url) == _PLAIN
