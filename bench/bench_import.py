"""Bulk-import throughput: 1,000,000 obligations (+ the 250,000 debtors they name).

Generates an NDJSON file in a temporary directory, then imports it through the job
pipeline (ImportRun + ``import`` job, run by ``cartera.jobs.runner.execute``) into a fresh
SQLite database and into a throwaway PostgreSQL database, and prints rows per second.

    python bench/bench_import.py [--obligations N] [--debtors N]
        [--postgres postgresql://postgres@127.0.0.1/bench_import] [--skip-sqlite]

The PostgreSQL URL (or ``CARTERA_BENCH_DATABASE_URL``) must name a database this script may
drop and recreate. Target: >= 50,000 rows/s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import msgspec

os.environ.setdefault("CARTERA_MASTER_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32))
                      .decode())
os.environ.setdefault("CARTERA_LOG_LEVEL", "WARNING")


def generate(path: Path, debtors: int, obligations: int) -> int:
    """Write the file; returns its row count. Each debtor precedes its obligations."""
    rng = random.Random(42)
    enc = msgspec.json.Encoder()
    start = date(2024, 1, 1)
    rows = 0
    per = max(obligations // debtors, 1)
    with path.open("wb") as f:
        for d in range(debtors):
            ref = f"C-{d:07d}"
            f.write(enc.encode({"type": "debtor", "external_ref": ref, "name": f"Debtor {d}",
                                "country": "PE", "zone": rng.choice(["Lima", "Cusco"]),
                                "tags": ["bench"]}) + b"\n")
            rows += 1
            count = per if d < debtors - 1 else obligations - per * (debtors - 1)
            for _ in range(count):
                due = start + timedelta(days=rng.randrange(700))
                f.write(enc.encode({
                    "type": "obligation", "external_ref": f"F-{rows:08d}",
                    "debtor_external_ref": ref, "kind": "invoice", "currency": "PEN",
                    "original_amount": f"{rng.randrange(1000, 500000) / 100:.2f}",
                    "due_date": due.isoformat()}) + b"\n")
                rows += 1
    return rows


async def import_once(url: str, path: Path, size: int) -> float:
    """Migrate ``url``, make a tenant, run the import job; returns seconds for the job."""
    from cartera.db import migrate
    from cartera.db.engine import make_engine, make_sessionmaker
    from cartera.imports import jobs  # noqa: F401  (registers the job kind)
    from cartera.imports.models import ImportRun
    from cartera.jobs.models import Job
    from cartera.jobs.runner import execute, insert_job
    from cartera.tenants.service import create_tenant

    await asyncio.to_thread(migrate.upgrade, url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        tenant = await create_tenant(session, slug="bench", name="bench", country="PE",
                                     currency="PEN")
        run = ImportRun(tenant_id=tenant.id, format="ndjson", filename=path.name,
                        file_path=str(path), size_bytes=size)
        session.add(run)
        await session.flush()
        job = await insert_job(session, tenant.id, "import", {"import_id": run.id})
        run.job_id, job_id, import_id = job.id, job.id, run.id
    started = time.perf_counter()
    await execute(sessionmaker, job_id)
    elapsed = time.perf_counter() - started
    from cartera.imports.pipeline import PHASES
    for phase, seconds in sorted(PHASES.items(), key=lambda kv: -kv[1]):
        print(f"    {phase:<20} {seconds:7.2f}s")
    PHASES.clear()
    async with sessionmaker() as session:
        done = await session.get(Job, job_id)
        finished = await session.get(ImportRun, import_id)
        assert done is not None and finished is not None
        assert done.status == "succeeded", done.error
        print(f"  {finished.rows_applied:,} applied, {finished.rows_failed:,} rejected")
    await engine.dispose()
    return elapsed


def recreate_postgres(url: str) -> str:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--obligations", type=int, default=1_000_000)
    p.add_argument("--debtors", type=int, default=250_000)
    p.add_argument("--postgres", default=os.environ.get("CARTERA_BENCH_DATABASE_URL"))
    p.add_argument("--skip-sqlite", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CARTERA_HOME"] = tmp
        path = Path(tmp) / "bench.ndjson"
        t0 = time.perf_counter()
        rows = generate(path, args.debtors, args.obligations)
        print(f"generated {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f}s")
        targets = [] if args.skip_sqlite else [("sqlite", f"sqlite+aiosqlite:///{tmp}/b.db")]
        if args.postgres:
            targets.append(("postgresql", recreate_postgres(args.postgres)))
        for name, url in targets:
            print(f"{name}:")
            seconds = asyncio.run(import_once(url, path, path.stat().st_size))
            print(f"  {rows:,} rows in {seconds:.1f}s = {rows / seconds:,.0f} rows/s "
                  f"({args.obligations / seconds:,.0f} obligations/s)")


if __name__ == "__main__":
    main()
