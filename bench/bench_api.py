"""HTTP latency and throughput of the debtor endpoints on a demo portfolio.

    .venv/bin/python bench/bench_api.py [--database-url postgresql://postgres@127.0.0.1/x]
        [--debtors 20000] [--concurrency 32] [--requests 4000] [--seconds 20]

Drops and recreates the database, loads the demo portfolio, starts ``cartera serve`` on
127.0.0.1 in a subprocess, gets a token, then drives bounded concurrent load on
``GET /v1/debtors/{id}`` (random ids) and on a filtered list, printing p50/p99 and req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import percentile, recreate_postgres, recreate_sqlite

from cartera.auth.clients import create_client
from cartera.db import migrate
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.demo.generator import load_demo_portfolio
from cartera.tenants.service import create_tenant


async def prepare(url: str, debtors: int) -> tuple[str, str, list[int]]:
    from sqlalchemy import select

    from cartera.portfolio.models import Debtor

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await create_tenant(session, slug="bench", name="bench", country="PE",
                                         currency="PEN")
            client, secret = await create_client(session, tenant.id, "bench")
            started = time.perf_counter()
            summary = await load_demo_portfolio(session, tenant.id, debtors, 1, date.today())
            await session.commit()
            print(f"loaded {summary.debtors:,} debtors, {summary.obligations:,} obligations, "
                  f"{summary.payments:,} payments in {time.perf_counter() - started:.1f} s",
                  flush=True)
            ids = list((await session.scalars(
                select(Debtor.id).where(Debtor.tenant_id == tenant.id))).all())
    finally:
        await engine.dispose()
    return client.client_id, secret, ids


async def drive(client: httpx.AsyncClient, make_path: Callable[[], str], total: int,
                concurrency: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    remaining = total
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(make_path())
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


async def wait_ready(base: str, within_s: float = 60.0) -> None:
    deadline = time.perf_counter() + within_s
    async with httpx.AsyncClient(base_url=base) as client:
        while time.perf_counter() < deadline:
            try:
                if (await client.get("/docs")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit("server did not become ready")


async def bench(base: str, client_id: str, secret: str, ids: list[int],
                args: argparse.Namespace) -> None:
    await wait_ready(base)
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as api:
        token = (await api.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(client_id, secret))).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        zones = ("Lima", "Callao", "Arequipa", "CDMX", "Guadalajara", "Monterrey", "Bogotá",
                 "Medellín", "Santiago", "Valparaíso")
        cases: list[tuple[str, Callable[[], str]]] = [
            ("GET /v1/debtors/{id}", lambda: f"/v1/debtors/{rng.choice(ids)}"),
            ("GET /v1/debtors?zone=..&dpd_min=30&limit=50",
             lambda: f"/v1/debtors?zone={rng.choice(zones)}&dpd_min=30&limit=50"),
        ]
        for name, make_path in cases:
            await drive(api, make_path, args.concurrency * 2, args.concurrency, 10)  # warm-up
            latencies, errors, elapsed = await drive(api, make_path, args.requests,
                                                     args.concurrency, args.seconds)
            print(f"{name}: {len(latencies)} requests, {errors} non-200, "
                  f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
                  f"{len(latencies) / elapsed:.0f} req/s "
                  f"(concurrency {args.concurrency})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_api")
    parser.add_argument("--sqlite", metavar="PATH", help="use a SQLite file instead")
    parser.add_argument("--debtors", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    url = recreate_sqlite(args.sqlite) if args.sqlite else recreate_postgres(args.database_url)
    migrate.upgrade(url)
    client_id, secret, ids = asyncio.run(prepare(url, args.debtors))
    # No plugins: these endpoints call none (and the dev venv also holds the test fixtures).
    env = {**os.environ, "CARTERA_DATABASE_URL": url, "CARTERA_LOG_LEVEL": "WARNING",
           "CARTERA_PLUGINS": os.environ.get("CARTERA_PLUGINS", "")}
    cartera = Path(sys.executable).with_name("cartera")
    server = subprocess.Popen([str(cartera), "serve", "--host", "127.0.0.1",
                               "--port", str(args.port)], env=env)
    try:
        asyncio.run(bench(f"http://127.0.0.1:{args.port}", client_id, secret, ids, args))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
