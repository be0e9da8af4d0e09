"""ERP sync throughput (PostgreSQL): a first sync of 200,000 open items (and the 50,000
customers they name) from the in-memory fake ERP connector, then a delta sync of 1,000
changes (amounts changed, items cleared, new items), each run end to end as an ``erp_sync``
job (pull outside transactions, the import pipeline's upsert per transaction of merged
ERP pages, the cursor stored with them, the final rebalance). Prints seconds per run and
the phases (``erp_page_tx`` holds ``erp_apply_chunk``, which holds the pipeline's own).

    python bench/bench_erp_sync.py [--items N] [--customers N] [--page-size N]
        [--changes N] [--postgres postgresql://postgres@127.0.0.1/bench_erp_sync]

The PostgreSQL URL (or ``CARTERA_BENCH_DATABASE_URL``) must name a database this script may
drop and recreate. Targets: first sync <= 60 s, delta of 1,000 changes <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("CARTERA_MASTER_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32))
                      .decode())
os.environ.setdefault("CARTERA_LOG_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.erpsync.fake_erp


def recreate_postgres(url: str) -> str:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def load_ledger(ledger: object, customers: int, items: int) -> None:
    from tests.erpsync.fake_erp import debtor, item

    per = max(items // customers, 1)
    start = date(2025, 1, 1)
    for c in range(customers):
        ledger.put_debtor(debtor(f"C{c:07d}", email=f"c{c}@example.com"))  # type: ignore
    for n in range(items):
        c = min(n // per, customers - 1)
        ledger.put_item(item(f"INV-{n:08d}", f"C{c:07d}",  # type: ignore[attr-defined]
                             f"{100 + n % 4000}.{n % 100:02d}",
                             due=start + timedelta(days=n % 600)))


def change(ledger: object, changes: int, items: int) -> None:
    from tests.erpsync.fake_erp import item

    step = max(items // changes, 1)
    for k in range(changes):
        n = k * step
        key = f"INV-{n:08d}"
        if k % 3 == 0:
            ledger.clear_item(key)  # type: ignore[attr-defined]
        elif k % 3 == 1:
            old = ledger.items[key]  # type: ignore[attr-defined]
            half = (old.original_amount.amount / 2).quantize(Decimal("0.01"))
            ledger.put_item(item(key, old.debtor_external_id,  # type: ignore[attr-defined]
                                 str(old.original_amount.amount), open_amount=str(half),
                                 due=old.due_date))
        else:
            ledger.put_item(item(f"NEW-{k:06d}", "C0000000",  # type: ignore[attr-defined]
                                 "99.90", due=date(2026, 12, 31)))


async def bench(url: str, customers: int, items: int, page_size: int, changes: int) -> None:
    os.environ["CARTERA_DATABASE_URL"] = url
    from cartera.api.context import Actor
    from cartera.db import migrate
    from cartera.db.engine import make_engine, make_sessionmaker
    from cartera.erpsync import (
        jobs,  # noqa: F401  (registers the job kinds)
        sync,
    )
    from cartera.erpsync.models import ErpSyncRun, ErpSyncSettings
    from cartera.imports.pipeline import PHASES
    from cartera.integrations.models import Integration
    from cartera.integrations.service import give_webhook_token, seal_secrets
    from cartera.jobs.models import Job
    from cartera.jobs.runner import InProcessRunner, execute
    from cartera.plugins.registry import current_host
    from cartera.tenants.service import create_tenant
    from tests.erpsync.fake_erp import install

    await asyncio.to_thread(migrate.upgrade, url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    runner = InProcessRunner(sessionmaker, background=False)
    connector = install(current_host())
    async with sessionmaker() as session, session.begin():
        tenant = await create_tenant(session, slug="bench", name="bench", country="PE",
                                     currency="PEN")
        integration = Integration(tenant_id=tenant.id, name="SAP", provider_kind="erp",
                                  provider_name="fake_erp", config={},
                                  secrets_sealed=seal_secrets(tenant.id, {}), secret_names=[])
        give_webhook_token(integration)
        session.add(integration)
        await session.flush()
        session.add(ErpSyncSettings(tenant_id=tenant.id, integration_id=integration.id,
                                    at_times=[], page_size=page_size, write_back=False))
    ledger = connector.ledger(integration.id)
    t0 = time.perf_counter()
    load_ledger(ledger, customers, items)
    print(f"fake ERP: {customers:,} customers, {items:,} open items built in "
          f"{time.perf_counter() - t0:.1f}s (not counted)")
    actor = Actor(tenant.id, None, None)

    async def one_run(label: str) -> None:
        async with sessionmaker() as session, session.begin():
            session.info["tenant_id"] = tenant.id
            found = await session.get(Integration, integration.id)
            assert found is not None
            run = await sync.queue_run(session, runner, found, trigger="manual", actor=actor)
            run_id, job_id = run.id, run.job_id
        PHASES.clear()
        started = time.perf_counter()
        await execute(sessionmaker, job_id)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        async with sessionmaker() as session:
            job = await session.get(Job, job_id)
            done = await session.get(ErpSyncRun, run_id)
            assert job is not None and done is not None
            assert done.status == "succeeded", (done.status, done.error, job.error)
        print(f"{label}: {seconds:.1f}s end to end; rows in {done.rows_in:,}, changed "
              f"{done.rows_changed:,}, failed {done.rows_failed:,}, pages {done.pages:,} "
              f"({done.rows_in / seconds:,.0f} rows/s)")
        for phase, spent in sorted(PHASES.items(), key=lambda kv: -kv[1])[:14]:
            print(f"    {phase:<20} {spent:7.2f}s")

    await one_run(f"first sync (page size {page_size:,})")
    change(ledger, changes, items)
    await one_run(f"delta sync of {changes:,} changes")
    await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--changes", type=int, default=1000)
    p.add_argument("--postgres", default=os.environ.get(
        "CARTERA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/bench_erp_sync"))
    args = p.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")
    asyncio.run(bench(recreate_postgres(args.postgres), args.customers, args.items,
                      args.page_size, args.changes))


if __name__ == "__main__":
    main()
