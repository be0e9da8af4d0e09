"""Segmentation over 1,000,000 debtors and 3,000,000 obligations, against DuckDB.

    .venv/bin/python bench/bench_segmentation.py [--database-url postgresql://...]
        [--sqlite /tmp/bench_seg.db] [--debtors 1000000] [--obligations 3000000]

Drops and recreates the database(s), migrates, fills them set-based in SQL (generate_series
on PostgreSQL, a recursive CTE on SQLite), builds ``debtor_balances`` with the real
set-based refresh, saves a realistic 10-segment rule set (aging, amounts in PEN and USD,
zone, risk score, stage) and prints:

* full segmentation run (stages + segments in one pass; first run = every debtor is placed,
  so 1M rows each go to debtor_placements and placement_history, neither with foreign keys
  since migration 0011; second run = steady state, one read of the summary and the
  placements), on PostgreSQL and on SQLite;
* preview of the same rule set (PostgreSQL);
* single-debtor re-evaluation, median of 50 (PostgreSQL);
* DuckDB: the same per-debtor aggregation and CASE over the same rows exported to Parquet
  (the practical speed limit for this aggregation on this machine), checked to give the
  same counts per segment.

Targets: full run <= 10 s on PostgreSQL and within 5x of DuckDB; preview <= 5 s;
single-debtor re-evaluation <= 20 ms. DuckDB is a bench-only dependency
(``.venv/bin/pip install duckdb``); without it the DuckDB figure is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
import psycopg
from _common import median, recreate_postgres, recreate_sqlite
from bench_aging import _fill_sql, stage_names
from sqlalchemy import func, select, text

from cartera.api.context import Actor
from cartera.db import migrate
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.payments.allocation import DebtorScope, refresh_balances
from cartera.segmentation import schemas, service
from cartera.segmentation.models import Placement, Segment, SegmentRun


def _dpd(low: int, high: int | None = None) -> dict[str, Any]:
    if high is None:
        return {"feature": "days_past_due", "op": "gte", "value": low}
    return {"feature": "days_past_due", "op": "between", "value": [low, high]}


def _pen(op: str, value: str) -> dict[str, Any]:
    return {"feature": "overdue_amount", "op": op, "value": value, "currency": "PEN"}


RULES: dict[str, Any] = {"segments": [
    {"code": "judicial", "name": "Judicial", "rule": {
        "feature": "stage", "op": "eq", "value": "judicial"}},
    {"code": "late_big", "name": "91+ big", "rule": {"all": [_dpd(91), _pen("gte", "5000.00")]}},
    {"code": "late", "name": "91+", "rule": _dpd(91)},
    {"code": "mid_big", "name": "31-90 big", "rule": {"all": [
        _dpd(31, 90), {"any": [_pen("gte", "2500.00"),
                               {"feature": "risk_score", "op": "gte", "value": 900}]}]}},
    {"code": "mid", "name": "31-90", "rule": _dpd(31, 90)},
    {"code": "early_lima", "name": "1-30 Lima", "rule": {"all": [
        _dpd(1, 30), {"feature": "zone", "op": "eq", "value": "Lima"}]}},
    {"code": "early_big", "name": "1-30 big", "rule": {"all": [_dpd(1, 30),
                                                              _pen("gte", "1000.00")]}},
    {"code": "early", "name": "1-30", "rule": _dpd(1, 30)},
    {"code": "usd", "name": "USD owed", "rule": {
        "feature": "outstanding_amount", "op": "gt", "value": "0.00", "currency": "USD"}},
    {"code": "current", "name": "Current", "rule": {"all": []}},
]}

# The same assignment in DuckDB: aggregate the balances per debtor, join, CASE.
DUCK_SQL = """
CREATE OR REPLACE TABLE assigned AS
WITH b AS (
  SELECT debtor_id, min(oldest_unpaid_due_date) AS oldest,
         sum(CASE WHEN currency = 'PEN' THEN overdue_minor ELSE 0 END) AS ovd_pen,
         sum(CASE WHEN currency = 'USD' THEN outstanding_minor ELSE 0 END) AS out_usd
  FROM read_parquet('{dir}/balances.parquet') GROUP BY debtor_id)
SELECT d.id AS debtor_id,
  CASE
    WHEN s.code = 'judicial' THEN 'judicial'
    WHEN b.oldest <= DATE '{as_of}' - 91 AND coalesce(b.ovd_pen, 0) >= 500000 THEN 'late_big'
    WHEN b.oldest <= DATE '{as_of}' - 91 THEN 'late'
    WHEN b.oldest <= DATE '{as_of}' - 31 AND b.oldest >= DATE '{as_of}' - 90
         AND (coalesce(b.ovd_pen, 0) >= 250000 OR d.risk_score >= 900) THEN 'mid_big'
    WHEN b.oldest <= DATE '{as_of}' - 31 AND b.oldest >= DATE '{as_of}' - 90 THEN 'mid'
    WHEN b.oldest <= DATE '{as_of}' - 1 AND b.oldest >= DATE '{as_of}' - 30
         AND d.zone = 'Lima' THEN 'early_lima'
    WHEN b.oldest <= DATE '{as_of}' - 1 AND b.oldest >= DATE '{as_of}' - 30
         AND coalesce(b.ovd_pen, 0) >= 100000 THEN 'early_big'
    WHEN b.oldest <= DATE '{as_of}' - 1 AND b.oldest >= DATE '{as_of}' - 30 THEN 'early'
    WHEN coalesce(b.out_usd, 0) > 0 THEN 'usd'
    ELSE 'current' END AS segment
FROM read_parquet('{dir}/debtors.parquet') d
LEFT JOIN b ON b.debtor_id = d.id
LEFT JOIN read_parquet('{dir}/stages.parquet') s ON s.debtor_id = d.id
"""

EXPORTS = {
    "debtors": "SELECT id, zone, risk_score FROM debtors WHERE tenant_id = {t}",
    "balances": "SELECT debtor_id, currency, overdue_minor, outstanding_minor, "
                "oldest_unpaid_due_date FROM debtor_balances WHERE tenant_id = {t}",
    "stages": "SELECT p.debtor_id, s.code FROM debtor_placements p JOIN stages s "
              "ON s.id = p.stage_id WHERE p.tenant_id = {t}",
}


SLOW_MS = float(os.environ.get("BENCH_SLOW_MS", "0"))


def _engine(url: str) -> Any:
    """An engine that prints statements slower than ``BENCH_SLOW_MS`` (when set)."""
    engine = make_engine(url)
    if SLOW_MS:
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info["bench_t0"] = time.perf_counter()

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            took = (time.perf_counter() - conn.info.pop("bench_t0")) * 1000
            if took >= SLOW_MS:
                print(f"    slow {took:,.0f} ms: {' '.join(statement.split())[:300]}")
    return engine


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


async def build(url: str, debtors: int, obligations: int, as_of: date) -> int:
    pg = url.startswith("postgresql")
    engine = _engine(url)
    started = time.perf_counter()
    from cartera.segmentation.stages import create_default_stages

    async with make_sessionmaker(engine)() as session:
        tenant_id = int((await session.execute(text(
            "INSERT INTO tenants (slug, name, country, default_currency, timezone, created_at) "
            "VALUES ('bench', 'bench', 'PE', 'PEN', 'America/Lima', CURRENT_TIMESTAMP) "
            "RETURNING id"))).scalar_one())
        create_default_stages(session, tenant_id)  # as create_tenant does
        debtor_sql, obligation_sql = _fill_sql(pg)
        await stage_names(session, debtors)
        await session.execute(text(debtor_sql), {"t": tenant_id, "debtors": debtors})
        first = int((await session.execute(
            text("SELECT MIN(id) FROM debtors WHERE tenant_id = :t"), {"t": tenant_id}
        )).scalar_one())
        await session.execute(text(obligation_sql), {"t": tenant_id, "debtors": debtors,
                                                    "obligations": obligations,
                                                    "first_debtor": first})
        await session.commit()
        await session.execute(text("ANALYZE"))  # the balance rebuild plans badly without
        await refresh_balances(session, tenant_id, DebtorScope.tenant(tenant_id), as_of)
        actor = Actor(tenant_id, None, None)
        await service.save_rule_set(session, actor, msgspec.convert(RULES, schemas.RuleSetIn))
        await session.commit()
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    await engine.dispose()
    print(f"  filled {debtors:,} debtors, {obligations:,} obligations and their balances in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return tenant_id


async def unplace(url: str) -> int:
    """Forget every placement, move and run of the bench tenant; returns its id."""
    engine = _engine(url)
    async with engine.connect() as conn:
        tenant_id = int((await conn.execute(text(
            "SELECT id FROM tenants WHERE slug = 'bench'"))).scalar_one())
        await conn.execute(text("TRUNCATE debtor_placements, placement_history, segment_runs"))
        await conn.commit()
    await _maintain(engine, url)
    await engine.dispose()
    return tenant_id


async def _maintain(engine: Any, url: str) -> None:
    """What autovacuum does between two daily runs: VACUUM ANALYZE on PostgreSQL (the
    visibility map lets the summary be read index-only), ANALYZE on SQLite."""
    vacuum = "VACUUM ANALYZE" if url.startswith("postgresql") else "ANALYZE"
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(vacuum))


async def full_runs(url: str, tenant_id: int, as_of: date, runs: int = 2) -> list[float]:
    engine = _engine(url)
    timings = []
    try:
        for i in range(runs):
            async with make_sessionmaker(engine)() as session:
                run = SegmentRun(tenant_id=tenant_id, status="queued", as_of=as_of, counts={},
                                 debtors=0, moves=0)
                session.add(run)
                await session.flush()
                started = time.perf_counter()
                await service.run_segmentation(session, run, as_of)
                await session.commit()
                timings.append(time.perf_counter() - started)
                print(f"  run {i + 1}: {_ms(timings[-1])}, {run.moves:,} moves, "
                      f"{run.counts}", flush=True)
            await _maintain(engine, url)
    finally:
        await engine.dispose()
    return timings


async def preview_and_reevaluate(url: str, tenant_id: int, as_of: date,
                                 samples: int) -> tuple[float, list[float]]:
    engine = _engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            started = time.perf_counter()
            await service.preview(session, tenant_id, msgspec.convert(RULES, schemas.RuleSetIn),
                                  as_of)
            preview = time.perf_counter() - started
            await session.rollback()
            low, high = (await session.execute(
                select(func.min(Placement.debtor_id), func.max(Placement.debtor_id))
                .where(Placement.tenant_id == tenant_id))).one()
        rng = random.Random(7)
        timings = []
        for _ in range(samples):
            debtor_id = rng.randint(int(low), int(high))
            async with make_sessionmaker(engine)() as session:
                started = time.perf_counter()
                await service.reevaluate_debtor(session, tenant_id, debtor_id, as_of)
                await session.commit()
                timings.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    return preview, timings


async def counts_by_code(url: str, tenant_id: int) -> dict[str, int]:
    engine = _engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.execute(
                select(Segment.code, func.count()).join(
                    Placement, Placement.segment_id == Segment.id)
                .where(Segment.tenant_id == tenant_id).group_by(Segment.code))).all()
    finally:
        await engine.dispose()
    return {str(c): int(n) for c, n in rows}


def duckdb_time(pg_url: str, tenant_id: int, as_of: date,
                expected: dict[str, int]) -> float | None:
    try:
        import duckdb
    except ImportError:
        print("DuckDB: not installed, skipped (bench-only: .venv/bin/pip install duckdb)")
        return None
    plain = "postgresql://" + pg_url.split("://", 1)[1]
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        con = duckdb.connect()
        with psycopg.connect(plain) as conn, conn.cursor() as cur:
            for name, sql in EXPORTS.items():
                csv = os.path.join(work, f"{name}.csv")
                with open(csv, "wb") as f, cur.copy(
                        f"COPY ({sql.format(t=tenant_id)}) TO STDOUT WITH (FORMAT csv, "
                        "HEADER true)") as copy:
                    for chunk in copy:
                        f.write(chunk)
                con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) "
                            f"TO '{work}/{name}.parquet' (FORMAT parquet)")
        print(f"  exported to Parquet in {time.perf_counter() - started:.1f} s", flush=True)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            con.execute(DUCK_SQL.format(dir=work, as_of=as_of.isoformat()))
            timings.append(time.perf_counter() - started)
        got = dict(con.execute("SELECT segment, count(*) FROM assigned GROUP BY 1").fetchall())
        same = {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
        print(f"  DuckDB counts {'match' if same else 'DIFFER from'} PostgreSQL: {got}")
        return median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_seg")
    parser.add_argument("--sqlite", metavar="PATH", help="also run on this SQLite file")
    parser.add_argument("--sqlite-debtors", type=int,
                        help="a smaller SQLite portfolio (default: the same)")
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--obligations", type=int)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the PostgreSQL portfolio of the last run (its placements "
                             "and history are emptied, so the first run is a first run again)")
    args = parser.parse_args()
    obligations = args.obligations or args.debtors * 3
    as_of = date.today()
    print(f"machine: {os.cpu_count()} cores; {args.debtors:,} debtors, {obligations:,} "
          "obligations", flush=True)

    print("PostgreSQL:", flush=True)
    if args.reuse:
        url = "postgresql+psycopg://" + args.database_url.split("://", 1)[1]
        tenant_id = asyncio.run(unplace(url))
    else:
        url = recreate_postgres(args.database_url)
        migrate.upgrade(url)
        tenant_id = asyncio.run(build(url, args.debtors, obligations, as_of))
    pg_runs = asyncio.run(full_runs(url, tenant_id, as_of))
    preview, reevals = asyncio.run(preview_and_reevaluate(url, tenant_id, as_of, args.samples))
    expected = asyncio.run(counts_by_code(url, tenant_id))
    duck = duckdb_time(args.database_url, tenant_id, as_of, expected)

    lite_runs: list[float] = []
    lite_n = args.sqlite_debtors or args.debtors
    if args.sqlite:
        print(f"SQLite ({lite_n:,} debtors):", flush=True)
        lite = recreate_sqlite(args.sqlite)
        migrate.upgrade(lite)
        lite_tenant = asyncio.run(build(lite, lite_n, lite_n * 3, as_of))
        lite_runs = asyncio.run(full_runs(lite, lite_tenant, as_of))

    print("\nresults")
    print(f"  full run, PostgreSQL: first {_ms(pg_runs[0])}, steady {_ms(pg_runs[-1])} "
          "(target <= 10 s)")
    if lite_runs:
        print(f"  full run, SQLite ({lite_n:,} debtors): first {_ms(lite_runs[0])}, "
              f"steady {_ms(lite_runs[-1])}")
    print(f"  preview, PostgreSQL: {_ms(preview)} (target <= 5 s)")
    print(f"  single-debtor re-evaluation, PostgreSQL: median {median(reevals) * 1000:.1f} ms "
          f"of {len(reevals)} (max {max(reevals) * 1000:.1f}; target <= 20 ms)")
    if duck is not None:
        print(f"  DuckDB, same aggregation + CASE over Parquet: {_ms(duck)} "
              f"(steady PostgreSQL run is {pg_runs[-1] / duck:.1f}x; target <= 5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
