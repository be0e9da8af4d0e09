"""Sustained send throughput through the job system, against a local fake SMS provider.

    .venv/bin/python bench/bench_send.py [--messages 5000] [--workers 2] [--concurrency 16]
        [--database-url postgresql://postgres@127.0.0.1/cartera_bench_send]

Recreates the database, migrates it, makes a tenant with N debtors (phone contact points),
a ``fixture_sms`` integration (the plugin of ``tests/plugins``, installed by ``dev.py``)
pointing at a fake provider served by uvicorn on 127.0.0.1, and an SMS template. It queues
N sends through the real send path (contact gate, interaction, transactional enqueue), then
starts ``--workers`` ``cartera worker`` processes (two by default) and prints messages/s
from the first to the last send the provider saw, plus the end-to-end time. Loopback only;
bounded in count and time.

The debtors live where it is now a working hour (:func:`working_zone`), so contact hours
allow the sends whenever the bench runs: in Peru while it is a working hour in Lima (the PE
pack then judges every message), else in a country with no pack installed (the gate then
allows with the reason ``no_compliance_pack``, as the tenant's default says).
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

from _common import recreate_postgres
from sqlalchemy import func, insert, select, text

from cartera.api.context import Actor, AppContext
from cartera.db import migrate
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.integrations import schemas as integration_schemas
from cartera.integrations import service as integrations
from cartera.jobs.procrastinate_runner import ProcrastinateRunner
from cartera.messaging import schemas as messaging_schemas
from cartera.messaging import sending, templates
from cartera.messaging.models import Interaction
from cartera.plugins.host import load_host
from cartera.portfolio.models import ContactPoint, Debtor
from cartera.settings import Settings
from cartera.tenants.service import create_tenant

FAKE_PROVIDER = '''
import itertools
counter = itertools.count(1)

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"id": "m-%d"}' % next(counter)
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
'''


ZONES = (("PE", "America/Lima"), ("ES", "Europe/Madrid"), ("IN", "Asia/Kolkata"),
         ("JP", "Asia/Tokyo"), ("NZ", "Pacific/Auckland"), ("US", "America/Los_Angeles"))


def working_zone() -> tuple[str, str]:
    """The first (country, zone) of :data:`ZONES` where it is now between 10:00 and 15:00
    on a weekday."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    for country, zone in ZONES:
        local = datetime.now(UTC).astimezone(ZoneInfo(zone))
        if local.isoweekday() <= 5 and 10 <= local.hour < 15:
            return country, zone
    return ZONES[0]


async def prepare(url: str, messages: int, provider_url: str, workers: int) -> Settings:
    settings = Settings(database_url=url, issuer="http://127.0.0.1:8000", jobs_inline=False,
                        log_level="WARNING")
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    host = load_host()
    runner = ProcrastinateRunner(settings, sessionmaker)
    await runner.start()
    async with sessionmaker() as session:
        country, zone = working_zone()
        print(f"debtors in {country}, {zone}", flush=True)
        tenant = await create_tenant(session, slug="bench", name="Bench", country="PE",
                                     currency="PEN")
        session.info["tenant_id"] = tenant.id
        actor = Actor(tenant.id, "bench", None)
        await session.execute(insert(Debtor), [
            {"tenant_id": tenant.id, "external_ref": f"B{i}", "name": f"Deudor {i}",
             "country": country, "timezone": zone, "kind": "person",
             "attributes": {}} for i in range(messages)])
        ids = (await session.scalars(select(Debtor.id).order_by(Debtor.id))).all()
        await session.execute(insert(ContactPoint), [
            {"tenant_id": tenant.id, "debtor_id": d, "kind": "phone",
             "value": f"+5198{d:07d}", "consent": "granted", "opted_out_channels": [],
             "origin": "debtor_provided", "preferred": True} for d in ids])
        integ = await integrations.create(session, host, actor,
                                          integration_schemas.IntegrationCreate(
            name="SMS", provider_kind="channel", provider_name="fixture_sms",
            config={"base_url": provider_url},
            secrets={"api_key": "k", "webhook_secret": "s"}))
        template = await templates.create(session, actor, messaging_schemas.TemplateCreate(
            code="r", channel="sms", locale="es-PE", name="r",
            body="Hola {{ debtor.first_name }}, recuerda tu pago."))
        await session.commit()
        app = AppContext(settings=settings, engine=engine, sessionmaker=sessionmaker,
                         tokens=None, jobs=runner)  # type: ignore[arg-type]
        started = time.perf_counter()
        for chunk in range(0, len(ids), 500):
            for debtor_id in ids[chunk:chunk + 500]:
                await sending.send(session, app, host, actor, messaging_schemas.MessageCreate(
                    debtor_id=debtor_id, integration_id=integ.id, template_id=template.id))
            await session.commit()
        print(f"queued {messages} sends through the API path in "
              f"{time.perf_counter() - started:.1f} s")
    await runner.stop()
    await engine.dispose()
    return settings


async def wait_until_sent(url: str, messages: int, limit_s: float) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < limit_s:
            async with engine.connect() as conn:
                done = await conn.scalar(select(func.count()).select_from(Interaction).where(
                    Interaction.status.in_(("sent", "failed"))))
            if done >= messages:
                break
            await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            first, last, sent = (await conn.execute(text(
                "SELECT min(at), max(at), count(*) FROM interaction_events "
                "WHERE status = 'sent'"))).one()
    finally:
        await engine.dispose()
    span = (last - first).total_seconds() if sent else float("nan")
    return sent / span if sent and span > 0 else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_send")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    # PostgreSQL needs an explicit master key (this process seals the integration's secrets,
    # the workers open them), and the workers may reach only the loopback fake provider.
    os.environ.setdefault("CARTERA_MASTER_KEY",
                          base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("CARTERA_EGRESS_ALLOW", f"127.0.0.1:{args.port}")
    url = recreate_postgres(args.database_url)
    migrate.upgrade(url)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fake_provider.py").write_text(FAKE_PROVIDER)
        provider = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fake_provider:app", "--host", "127.0.0.1",
             "--port", str(args.port), "--log-level", "warning", "--no-access-log"],
            cwd=tmp)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            time.sleep(1.5)
            asyncio.run(prepare(url, args.messages, f"http://127.0.0.1:{args.port}",
                                args.workers))
            env = {**os.environ, "CARTERA_DATABASE_URL": url, "CARTERA_LOG_LEVEL": "WARNING"}
            started = time.perf_counter()
            profile = os.environ.get("BENCH_PROFILE")  # BENCH_PROFILE=w.prof: w.prof.0, ...
            workers = [subprocess.Popen(
                [sys.executable, *(["-m", "cProfile", "-o", f"{profile}.{n}"] if profile
                                   else []),
                 "-m", "cartera.cli", "worker", "--concurrency", str(args.concurrency)],
                env=env) for n in range(args.workers)]
            rate = asyncio.run(wait_until_sent(url, args.messages, 300))
            total = time.perf_counter() - started
            used = sum(cpu_seconds(w.pid) for w in workers)
            print(f"{args.messages} messages, {args.workers} workers x {args.concurrency}: "
                  f"{rate:.0f} messages/s sustained (first to last send), "
                  f"{args.messages / total:.0f} messages/s end to end incl. worker start-up "
                  f"({total:.1f} s); the workers used {used:.1f} s CPU in all, load "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
            provider.terminate()
            provider.wait(timeout=10)


if __name__ == "__main__":
    main()
