"""Webhook delivery throughput: two ``cartera events deliver`` workers to a local receiver.

    .venv/bin/python bench/bench_events.py [--events 5000] [--workers 2] [--concurrency 32]
        [--debtors 500] [--database-url postgresql://postgres@127.0.0.1/cartera_bench_events]

Recreates the database, migrates it, makes a tenant with one webhook endpoint pointing at
a receiver served by uvicorn on 127.0.0.1 (allow-listed for egress), writes N events (each
about one of ``--debtors`` debtors, so per-debtor ordering is in play) and fans them out,
then starts the workers and prints deliveries/s from the first to the last attempt the
database logged, plus the end-to-end time. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("CARTERA_MASTER_KEY",
                      base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())

from _common import recreate_postgres
from sqlalchemy import func, insert, select, text

from cartera.db import migrate
from cartera.db.base import table_of
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.events import endpoints
from cartera.events.delivery import dispatch
from cartera.events.models import DeliveryAttempt, EventDelivery, OutboxEvent
from cartera.events.outbox import new_event_id
from cartera.events.schemas import EndpointCreate
from cartera.settings import Settings, install_settings
from cartera.tenants.service import create_tenant

RECEIVER = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
'''
EGRESS = "127.0.0.1"


async def prepare(url: str, events: int, debtors: int, receiver_url: str) -> None:
    install_settings(Settings(database_url=url, egress_allow=EGRESS, log_level="WARNING"))
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        tenant = await create_tenant(session, slug="bench", name="Bench", country="PE",
                                     currency="PEN")
        await endpoints.create(session, tenant.id, EndpointCreate(
            url=f"{receiver_url}/hook", event_types=["debtor.*"]))
        await session.commit()
        await session.execute(insert(table_of(OutboxEvent)), [
            {"id": new_event_id(), "tenant_id": tenant.id, "type": "debtor.updated",
             "resource_type": "debtor", "resource_id": str(i % debtors + 1),
             "debtor_id": i % debtors + 1, "data": {"name": f"Deudor {i}", "n": i},
             "dispatched": False} for i in range(events)])
        await session.commit()
        while await dispatch(session):
            await session.commit()
        await session.commit()
    await engine.dispose()


async def wait_until_delivered(url: str, events: int, limit_s: float) -> tuple[float, int]:
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < limit_s:
            async with engine.connect() as conn:
                done = await conn.scalar(select(func.count()).select_from(EventDelivery)
                                         .where(EventDelivery.status == "succeeded"))
            if done >= events:
                break
            await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            first, last, ok = (await conn.execute(text(
                "SELECT min(at), max(at), count(*) FROM event_delivery_attempts "
                "WHERE succeeded"))).one()
            failed = await conn.scalar(select(func.count()).select_from(DeliveryAttempt)
                                       .where(DeliveryAttempt.succeeded.is_(False)))
    finally:
        await engine.dispose()
    span = (last - first).total_seconds() if ok else float("nan")
    return (ok / span if ok and span > 0 else float("nan")), int(failed or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_events")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--debtors", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    url = recreate_postgres(args.database_url)
    migrate.upgrade(url)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "receiver.py").write_text(RECEIVER)
        receiver = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "receiver:app", "--host", "127.0.0.1",
             "--port", str(args.port), "--log-level", "warning", "--no-access-log",
             "--backlog", "1024"], cwd=tmp)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            time.sleep(1.5)
            asyncio.run(prepare(url, args.events, args.debtors,
                                f"http://127.0.0.1:{args.port}"))
            env = {**os.environ, "CARTERA_DATABASE_URL": url, "CARTERA_LOG_LEVEL": "WARNING",
                   "CARTERA_EGRESS_ALLOW": EGRESS}
            started = time.perf_counter()
            workers = [subprocess.Popen(
                [sys.executable, "-m", "cartera.cli", "events", "deliver", "--concurrency",
                 str(args.concurrency), "--poll", "0.2"], env=env)
                for _ in range(args.workers)]
            rate, failed = asyncio.run(wait_until_delivered(url, args.events, 300))
            total = time.perf_counter() - started
            print(f"{args.events} deliveries ({args.debtors} debtors), {args.workers} workers "
                  f"x {args.concurrency}: {rate:.0f} deliveries/s sustained (first to last "
                  f"attempt), {args.events / total:.0f}/s end to end incl. worker start-up "
                  f"({total:.1f} s), {failed} failed attempts")
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
            receiver.terminate()
            receiver.wait(timeout=10)


if __name__ == "__main__":
    main()
