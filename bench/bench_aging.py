"""Aging report over a whole tenant of 1,000,000 obligations (~250k debtors).

    .venv/bin/python bench/bench_aging.py [--database-url postgresql://postgres@127.0.0.1/x]
    .venv/bin/python bench/bench_aging.py --sqlite /tmp/bench.db [--obligations 200000]

Drops and recreates the database, migrates it, fills it set-based in SQL, then prints the
median of 5 runs of :func:`cartera.reports.aging.aging_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, recreate_postgres, recreate_sqlite, stage_sealed
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.db import migrate
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.reports.aging import aging_report

_SERIES_PG = "generate_series(1, :n) AS s(g)"
_SERIES_SQLITE = ("(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
                  "WHERE g < :n) SELECT g FROM s) AS s")


async def stage_names(session: AsyncSession, debtors: int) -> None:
    """The sealed names the debtor fill of :func:`_fill_sql` joins (``Deudor <g>``)."""
    await stage_sealed(session, "debtors.name", ((g, f"Deudor {g}")
                                                 for g in range(1, debtors + 1)))


def _fill_sql(pg: bool) -> list[str]:
    """The debtor and obligation fills; the debtor fill joins :func:`stage_names`'s table."""
    series = _SERIES_PG if pg else _SERIES_SQLITE
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    today = "CURRENT_DATE" if pg else "date('now')"
    due = (f"({today} + (60 - ((g % 1000) * 7919) % 460))" if pg
           else "date('now', printf('%+d days', 60 - ((g % 1000) * 7919) % 460))")
    issue = (f"({today} + (30 - ((g % 1000) * 7919) % 460))" if pg
             else "date('now', printf('%+d days', 30 - ((g % 1000) * 7919) % 460))")
    json_empty = "'{}'::jsonb" if pg else "'{}'"
    return [
        f"""INSERT INTO debtors (tenant_id, external_ref, kind, name, country, subdivision,
                timezone, zone, risk_score, attributes, created_at, updated_at)
            SELECT :t, 'B-' || s.g, 'person', b.v, 'PE', 'PE-LMA', 'America/Lima',
                   CASE s.g % 3 WHEN 0 THEN 'Lima' WHEN 1 THEN 'Callao' ELSE 'Arequipa' END,
                   s.g % 1000, {json_empty}, {now}, {now}
            FROM {series.replace(':n', ':debtors')} JOIN bench_sealed b ON b.g = s.g""",
        f"""INSERT INTO obligations (tenant_id, external_ref, debtor_id, kind, product, currency,
                original_minor, prior_paid_minor, outstanding_minor, issue_date, due_date,
                status, created_at, updated_at)
            SELECT :t, 'O-' || g, :first_debtor + (g % :debtors),
                   CASE WHEN g % 50 = 0 THEN 'credit_note' WHEN g % 3 = 0 THEN 'installment'
                        WHEN g % 3 = 1 THEN 'invoice' ELSE 'credit_card_balance' END,
                   CASE g % 4 WHEN 0 THEN 'prestamo' WHEN 1 THEN 'tarjeta' WHEN 2 THEN 'pyme'
                        ELSE 'servicios' END,
                   CASE WHEN g % 20 = 3 THEN 'USD' ELSE 'PEN' END,
                   1000 + (g * 37) % 500000, 0,
                   CASE WHEN g % 10 = 0 THEN 0 ELSE 1000 + (g * 37) % 500000 END,
                   {issue}, {due},
                   CASE WHEN g % 10 = 0 THEN 'paid' WHEN g % 97 = 0 THEN 'disputed'
                        ELSE 'open' END,
                   {now}, {now}
            FROM {series.replace(':n', ':obligations')}""",
    ]


async def build(url: str, debtors: int, obligations: int) -> int:
    pg = url.startswith("postgresql")
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        tenant_id = int((await session.execute(text(
            "INSERT INTO tenants (slug, name, country, default_currency, timezone, created_at) "
            "VALUES ('bench', 'bench', 'PE', 'PEN', 'America/Lima', CURRENT_TIMESTAMP) "
            "RETURNING id"))).scalar_one())
        debtor_sql, obligation_sql = _fill_sql(pg)
        started = time.perf_counter()
        await stage_names(session, debtors)
        await session.execute(text(debtor_sql), {"t": tenant_id, "debtors": debtors})
        first = int((await session.execute(
            text("SELECT MIN(id) FROM debtors WHERE tenant_id = :t"), {"t": tenant_id}
        )).scalar_one())
        await session.execute(text(obligation_sql), {"t": tenant_id, "debtors": debtors,
                                                    "obligations": obligations,
                                                    "first_debtor": first})
        await session.commit()
        print(f"filled {debtors:,} debtors and {obligations:,} obligations in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    await engine.dispose()
    return tenant_id


async def run_report(url: str, tenant_id: int, runs: int) -> list[float]:
    engine = make_engine(url)
    timings = []
    try:
        async with AsyncSession(engine) as session:
            for i in range(runs):
                started = time.perf_counter()
                report = await aging_report(session, tenant_id, date.today())
                timings.append(time.perf_counter() - started)
                if i == 0:
                    for cur in report.currencies:
                        counts = {b.bucket: b.obligations for b in cur.buckets}
                        print(f"  {cur.currency}: total {cur.total_amount} {counts}")
    finally:
        await engine.dispose()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench")
    parser.add_argument("--sqlite", metavar="PATH", help="use a SQLite file instead")
    parser.add_argument("--obligations", type=int, default=1_000_000)
    parser.add_argument("--debtors", type=int)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    debtors = args.debtors or max(1, args.obligations // 4)
    url = recreate_sqlite(args.sqlite) if args.sqlite else recreate_postgres(args.database_url)
    migrate.upgrade(url)
    tenant_id = asyncio.run(build(url, debtors, args.obligations))
    timings = asyncio.run(run_report(url, tenant_id, args.runs))
    print(f"aging_report over {args.obligations:,} obligations "
          f"({'SQLite' if args.sqlite else 'PostgreSQL'}): median {median(timings) * 1000:.0f} ms"
          f" of {args.runs} runs (min {min(timings) * 1000:.0f}, "
          f"max {max(timings) * 1000:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
