"""0013: every tenant without stages gets the defaults (they were created on first read)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cartera.db import migrate


def test_0013_gives_the_default_stages_to_tenants_without_any(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0011")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tenants (id, slug, name, country, default_currency, timezone, "
                   "created_at) VALUES (1, 'a', 'A', 'PE', 'PEN', 'America/Lima', '2026-01-01'),"
                   " (2, 'b', 'B', 'PE', 'PEN', 'America/Lima', '2026-01-01')")
        db.execute("INSERT INTO stages (tenant_id, code, name, position, min_dpd, max_dpd, "
                   "active, created_at, updated_at) VALUES (2, 'all', 'All', 0, 0, NULL, 1, "
                   "'2026-01-01', '2026-01-01')")
    migrate.upgrade(url, "0013")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT tenant_id, code, position, min_dpd, max_dpd, active "
                          "FROM stages ORDER BY tenant_id, position").fetchall()
    assert rows == [(1, "preventive", 0, 0, 0, 1), (1, "administrative", 1, 1, 30, 1),
                    (1, "extrajudicial", 2, 31, 180, 1), (1, "judicial", 3, 181, None, 1),
                    (2, "all", 0, 0, None, 1)]
