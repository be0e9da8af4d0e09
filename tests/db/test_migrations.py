"""Migrations keep data: 0008 rebuilds SQLite tables that other tables reference; 0011
merges the stage and segment tables into placements."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from cartera.db import migrate

_ROWS = [
    "INSERT INTO tenants (id, slug, name, country, default_currency, timezone, created_at) "
    "VALUES (1, 'a', 'A', 'PE', 'PEN', 'America/Lima', '2026-01-01'), "
    "(2, 'b', 'B', 'PE', 'PEN', 'America/Lima', '2026-01-01')",
    "INSERT INTO debtors (id, tenant_id, external_ref, kind, name, country, timezone, "
    "attributes, created_at, updated_at) VALUES (10, 1, 'C-1', 'person', 'Ana', 'PE', "
    "'America/Lima', '{}', '2026-01-01', '2026-01-01')",
    "INSERT INTO obligations (id, tenant_id, debtor_id, external_ref, kind, currency, "
    "original_minor, prior_paid_minor, outstanding_minor, due_date, status, created_at, "
    "updated_at) VALUES (20, 1, 10, 'F-1', 'invoice', 'PEN', 1000, 0, 400, '2026-01-01', "
    "'open', '2026-01-01', '2026-01-01')",
    "INSERT INTO payments (id, tenant_id, debtor_id, currency, amount_minor, unapplied_minor, "
    "paid_on, status, created_at) VALUES (30, 1, 10, 'PEN', 600, 0, '2026-01-02', 'applied', "
    "'2026-01-02')",
    "INSERT INTO allocations (tenant_id, debtor_id, currency, obligation_id, payment_id, "
    "amount_minor, explicit) VALUES (1, 10, 'PEN', 20, 30, 600, 0)",
    "INSERT INTO debtor_balances (tenant_id, debtor_id, currency, outstanding_minor, "
    "overdue_minor, unapplied_credit_minor, open_count, as_of) "
    "VALUES (1, 10, 'PEN', 400, 400, 0, 1, '2026-02-01')",
    "INSERT INTO debtor_tags (tenant_id, debtor_id, tag) VALUES (1, 10, 'vip')",
]
_TABLES = ("obligations", "payments", "allocations", "debtor_balances", "debtor_tags")


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES}


def test_0008_keeps_every_row_and_ties_debtor_rows_to_their_tenant(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0007")
    with sqlite3.connect(path) as db:
        for sql in _ROWS:
            db.execute(sql)
    migrate.upgrade(url)
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys=ON")
    assert _counts(db) == dict.fromkeys(_TABLES, 1)
    with pytest.raises(sqlite3.IntegrityError):  # tenant 2 naming tenant 1's debtor
        db.execute("INSERT INTO debtor_tags (tenant_id, debtor_id, tag) VALUES (2, 10, 'x')")
    db.execute("DELETE FROM debtors WHERE id = 10")
    assert _counts(db) == dict.fromkeys(_TABLES, 0)
    db.close()


async def test_the_migrations_build_exactly_the_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from cartera.db.engine import make_engine
    from cartera.db.migrate import include_object
    from cartera.db.models import Base

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_object": include_object})
        return list(compare_metadata(context, Base.metadata))

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


_EVALUATED = [
    "INSERT INTO stages (id, tenant_id, code, name, position, min_dpd, max_dpd, active, "
    "created_at, updated_at) VALUES (40, 1, 'early', 'Early', 0, 0, 30, 1, '2026-01-01', "
    "'2026-01-01'), (41, 1, 'late', 'Late', 1, 31, NULL, 1, '2026-01-01', '2026-01-01')",
    "INSERT INTO segments (id, tenant_id, code, name, position, rule, version, active, "
    "created_at, updated_at) VALUES (50, 1, 'all', 'All', 0, '{}', 1, 1, '2026-01-01', "
    "'2026-01-01')",
    "INSERT INTO debtor_stages (tenant_id, debtor_id, stage_id, manual, reason, set_by, "
    "set_at) VALUES (1, 10, 41, 1, 'lawsuit', 'ana', '2026-01-03')",
    "INSERT INTO segment_memberships (tenant_id, debtor_id, segment_id, entered_at) "
    "VALUES (1, 10, 50, '2026-01-02')",
    "INSERT INTO stage_history (id, tenant_id, debtor_id, from_stage_id, to_stage_id, at, "
    "manual, reason, actor) VALUES (7, 1, 10, NULL, 40, '2026-01-02', 0, NULL, 'run 1'), "
    "(8, 1, 10, 40, 41, '2026-01-03', 1, 'lawsuit', 'ana')",
    "INSERT INTO segment_history (id, tenant_id, debtor_id, from_segment_id, to_segment_id, "
    "run_id, at) VALUES (7, 1, 10, NULL, 50, 1, '2026-01-02')",
]


def test_0011_carries_stages_segments_and_both_histories_into_placements(
        tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0010")
    with sqlite3.connect(path) as db:
        for sql in _ROWS[:2] + _EVALUATED:
            db.execute(sql)
    migrate.upgrade(url)
    db = sqlite3.connect(path)
    assert db.execute(
        "SELECT debtor_id, stage_id, stage_manual, stage_reason, stage_set_by, segment_id, "
        "segment_entered_at FROM debtor_placements").fetchall() == [
        (10, 41, 1, "lawsuit", "ana", 50, "2026-01-02")]
    assert db.execute(
        "SELECT at, from_stage_id, to_stage_id, manual, actor, from_segment_id, "
        "to_segment_id, run_id FROM placement_history ORDER BY id").fetchall() == [
        ("2026-01-02", None, 40, 0, "run 1", None, None, None),
        ("2026-01-02", None, None, 0, None, None, 50, 1),
        ("2026-01-03", 40, 41, 1, "ana", None, None, None)]
    assert not db.execute("SELECT name FROM sqlite_master WHERE name IN ('debtor_stages', "
                          "'segment_memberships', 'stage_history', 'segment_history')"
                          ).fetchall()
    db.close()
    command.downgrade(migrate.alembic_config(url), "0010")  # and back, losing nothing
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT debtor_id, stage_id, manual, reason FROM debtor_stages"
                          ).fetchall() == [(10, 41, 1, "lawsuit")]
        assert db.execute("SELECT debtor_id, segment_id FROM segment_memberships"
                          ).fetchall() == [(10, 50)]
        assert db.execute("SELECT from_stage_id, to_stage_id FROM stage_history ORDER BY id"
                          ).fetchall() == [(None, 40), (40, 41)]
        assert db.execute("SELECT to_segment_id, run_id FROM segment_history").fetchall() == [
            (50, 1)]
