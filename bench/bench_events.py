"""Webhook delivery throughput: two ``cartera events deliver`` workers to a local receiver.

    .venv/bin/python bench/bench_events.py [--events 5000] [--workers 2] [--concurrency 32]
        [--debtors 500] [--receiver-workers 1] [--worker-args "--pipelines 2"]
        [--response-bytes 0]
        [--database-url postgresql://postgres@127.0.0.1/cartera_bench_events]

Recreates the database, migrates it, makes a tenant with one webhook endpoint pointing at
a receiver served by uvicorn on 127.0.0.1 (allow-listed for egress), writes N events (each
about one of ``--debtors`` debtors, so per-debtor ordering is in play) and fans them out,
then starts the workers and prints deliveries/s from the first to the last attempt the
database logged, the end-to-end time, the CPU seconds each process used (workers, receiver,
PostgreSQL backends of the database) and the load average. Loopback only; bounded in count
and time.

Before/after on the same machine: run this file with another checkout's interpreter (its
``cartera`` package is imported), e.g. ``/work/main/.venv/bin/python bench/bench_events.py``.
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
import os

BODY = b"x" * int(os.environ.get("BENCH_RESPONSE_BYTES", "0"))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200 if BODY else 204,
                "headers": []})
    await send({"type": "http.response.body", "body": BODY})
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


async def wait_first_attempt(url: str, limit_s: float) -> None:
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < limit_s:
            async with engine.connect() as conn:
                if await conn.scalar(select(func.count()).select_from(DeliveryAttempt)):
                    return
            await asyncio.sleep(0.05)
    finally:
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a live process and its live descendants (uvicorn's workers)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(c) for c in task.read_text().split()]
    return cpu_seconds(pid) + sum(tree_cpu_seconds(c) for c in children)


def backend_cpu_seconds(url: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to the bench database now."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    plain = "postgresql://" + url.split("://", 1)[1].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(plain, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    return sum(cpu_seconds(p) for p in pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_events")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--debtors", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--receiver-workers", type=int, default=1,
                        help="uvicorn processes serving the receiver")
    parser.add_argument("--worker-args", default="",
                        help="more arguments for each `cartera events deliver`")
    parser.add_argument("--response-bytes", type=int, default=0,
                        help="the receiver answers 200 with this many bytes (0: 204, no "
                             "body): each attempt then logs a response excerpt")
    args = parser.parse_args()
    url = recreate_postgres(args.database_url)
    migrate.upgrade(url)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "receiver.py").write_text(RECEIVER)
        receiver = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "receiver:app", "--host", "127.0.0.1",
             "--port", str(args.port), "--log-level", "warning", "--no-access-log",
             "--backlog", "1024", "--workers", str(args.receiver_workers)], cwd=tmp,
            env={**os.environ, "BENCH_RESPONSE_BYTES": str(args.response_bytes)})
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
                 str(args.concurrency), "--poll", "0.2", *args.worker_args.split()], env=env)
                for _ in range(args.workers)]
            receiver_cpu = tree_cpu_seconds(receiver.pid)
            asyncio.run(wait_first_attempt(url, 60))
            started_cpu = [cpu_seconds(w.pid) for w in workers]
            rate, failed = asyncio.run(wait_until_delivered(url, args.events, 300))
            total = time.perf_counter() - started
            worker_cpu = [cpu_seconds(w.pid) - c
                          for w, c in zip(workers, started_cpu, strict=True)]
            db_cpu = backend_cpu_seconds(url)
            receiver_cpu = tree_cpu_seconds(receiver.pid) - receiver_cpu
            load = os.getloadavg()
            print(f"{args.events} deliveries ({args.debtors} debtors), {args.workers} workers "
                  f"x {args.concurrency}: {rate:.0f} deliveries/s sustained (first to last "
                  f"attempt), {args.events / total:.0f}/s end to end incl. worker start-up "
                  f"({total:.1f} s), {failed} failed attempts")
            print("CPU s: workers " + " + ".join(f"{c:.2f}" for c in worker_cpu)
                  + f" (from the first attempt), receiver {receiver_cpu:.2f}, PostgreSQL backends "
                  f"{db_cpu:.2f} (live ones); load average {load[0]:.2f} {load[1]:.2f} "
                  f"{load[2]:.2f}")
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
            receiver.terminate()
            receiver.wait(timeout=10)


if __name__ == "__main__":
    main()
