"""Bulk-import throughput: 1,000,000 obligations (+ the 250,000 debtors they name).

Generates an NDJSON file in a temporary directory, then imports it through the job
pipeline (ImportRun + ``import`` job, run by ``cartera.jobs.runner.execute``) into a fresh
SQLite database and into a throwaway PostgreSQL database, and prints rows per second.

    python bench/bench_import.py [--obligations N] [--debtors N]
        [--postgres postgresql://postgres@127.0.0.1/bench_import] [--skip-sqlite]

The PostgreSQL URL (or ``CARTERA_BENCH_DATABASE_URL``) must name a database this script may
drop and recreate. Target: >= 50,000 rows/s on PostgreSQL.

On PostgreSQL the same run also measures a bare baseline on the same rows: decode the file,
``COPY`` debtors and obligations into unlogged staging tables, then one upsert of each into
an indexed table (unique external reference, debtor foreign key), and prints the
pipeline's throughput as a ratio of it (target >= 0.6).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import shutil
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


_BARE_SCHEMA = """
DROP TABLE IF EXISTS bare_obligations, bare_debtors, bare_stage_obligations, bare_stage_debtors;
CREATE UNLOGGED TABLE bare_stage_debtors (external_ref text, name text, country text);
CREATE UNLOGGED TABLE bare_stage_obligations (external_ref text, debtor_ref text,
    currency text, original_minor bigint, due_date date);
CREATE TABLE bare_debtors (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL,
    external_ref text NOT NULL, name text NOT NULL, country text NOT NULL,
    UNIQUE (tenant_id, external_ref));
CREATE TABLE bare_obligations (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL,
    external_ref text NOT NULL, debtor_id bigint NOT NULL REFERENCES bare_debtors (id),
    currency text NOT NULL, original_minor bigint NOT NULL, due_date date NOT NULL,
    UNIQUE (tenant_id, external_ref));
CREATE INDEX ON bare_obligations (debtor_id);
"""
_BARE_UPSERT = (
    """INSERT INTO bare_debtors (tenant_id, external_ref, name, country)
       SELECT 1, external_ref, name, country FROM bare_stage_debtors
       ON CONFLICT (tenant_id, external_ref) DO UPDATE SET name = excluded.name,
           country = excluded.country""",
    """INSERT INTO bare_obligations (tenant_id, external_ref, debtor_id, currency,
           original_minor, due_date)
       SELECT 1, s.external_ref, d.id, s.currency, s.original_minor, s.due_date
       FROM bare_stage_obligations s
       JOIN bare_debtors d ON d.tenant_id = 1 AND d.external_ref = s.debtor_ref
       ON CONFLICT (tenant_id, external_ref) DO UPDATE SET debtor_id = excluded.debtor_id,
           original_minor = excluded.original_minor, due_date = excluded.due_date""",
)


def bare_baseline(url: str, path: Path) -> float:
    """Seconds for the bare baseline (see the module doc) on the rows of ``path``."""
    import psycopg

    from cartera.imports.pipeline import copy_text

    plain = "postgresql://" + url.split("://", 1)[1]
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(_BARE_SCHEMA)
    started = time.perf_counter()
    decoder = msgspec.json.Decoder()
    debtors: list[tuple[object, ...]] = []
    obligations: list[tuple[object, ...]] = []
    with path.open("rb") as f:
        for line in f:
            row = decoder.decode(line)
            if row["type"] == "debtor":
                debtors.append((row["external_ref"], row["name"], row["country"]))
            else:
                amount = row["original_amount"].replace(".", "")
                obligations.append((row["external_ref"], row["debtor_external_ref"],
                                    row["currency"], int(amount), row["due_date"]))
    with psycopg.connect(plain) as conn:
        with conn.cursor() as cur:
            for table, rows, cols in (
                    ("bare_stage_debtors", debtors, "external_ref, name, country"),
                    ("bare_stage_obligations", obligations,
                     "external_ref, debtor_ref, currency, original_minor, due_date")):
                data = copy_text([tuple(str(v) for v in r) for r in rows], 0)
                # copy_text prefixes a key column: strip it (the bare tables have none)
                data = b"\n".join(x.split(b"\t", 1)[1] for x in data.split(b"\n") if x)
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    copy.write(data + b"\n")
            cur.execute("ANALYZE bare_stage_debtors")
            cur.execute("ANALYZE bare_stage_obligations")
            for sql in _BARE_UPSERT:
                cur.execute(sql)
        conn.commit()
    return time.perf_counter() - started


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
        print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} "
              "cores")
        bare_copy = Path(tmp) / "bare.ndjson"
        shutil.copyfile(path, bare_copy)
        for name, url in targets:
            print(f"{name}:")
            upload = Path(tmp) / f"{name}.ndjson"  # the import deletes its upload when done
            shutil.copyfile(path, upload)
            seconds = asyncio.run(import_once(url, upload, upload.stat().st_size))
            print(f"  {rows:,} rows in {seconds:.1f}s = {rows / seconds:,.0f} rows/s "
                  f"({args.obligations / seconds:,.0f} obligations/s)")
            if name == "postgresql":
                bare = bare_baseline(url, bare_copy)
                print(f"  bare baseline (decode + COPY + one upsert each, same rows): "
                      f"{bare:.1f}s = {rows / bare:,.0f} rows/s")
                print(f"  ratio pipeline / bare: {bare / seconds:.2f} (target >= 0.6)")


if __name__ == "__main__":
    main()
