"""Sustained send throughput through the job system, against a local fake SMS provider.

    .venv/bin/python bench/bench_send.py [--messages 5000] [--workers 2] [--concurrency 16]
        [--pack-judging on|off|both]
        [--database-url postgresql://postgres@127.0.0.1/cartera_bench_send]

Recreates the database, migrates it, makes a tenant with N debtors (phone contact points),
a ``fixture_sms`` integration (the plugin of ``tests/plugins``, installed by ``dev.py``)
pointing at a fake provider served by uvicorn on 127.0.0.1, and an SMS template. It queues
N sends through the real send path (contact gate, interaction, transactional enqueue), then
starts ``--workers`` ``cartera worker`` processes (two by default) and prints messages/s
from the first to the last send the provider saw, plus the end-to-end time. Loopback only;
bounded in count and time.

``--pack-judging`` says whether a compliance pack judges each message, whatever the hour:

* ``on``: the debtors live in Peru (``America/Lima``) and the tenant's ``compliance_pe``
  integration narrows the art. 62.b window to calls and visits (``hours_apply_to``, the
  narrowest the pack accepts), so the PE pack judges every SMS (its checks of the
  recipient, the content and the address all run) and allows it at any hour;
* ``off``: the debtors live in Spain, where no pack is installed: the gate allows with the
  reason ``no_compliance_pack`` (the tenant's default);
* ``both`` (default): one run of each, on a fresh database, and both figures printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import signal
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


PLACES = {"on": ("PE", "America/Lima"), "off": ("ES", "Europe/Madrid")}
"""Where the debtors live for each ``--pack-judging`` case."""
PE_ANY_HOUR = {"hours_apply_to": ["voice", "visit"]}
"""The PE pack's config that lets an SMS go at any hour (art. 62.b read literally)."""


async def prepare(url: str, messages: int, provider_url: str, judging: str) -> Settings:
    settings = Settings(database_url=url, issuer="http://127.0.0.1:8000", jobs_inline=False,
                        log_level="WARNING")
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    host = load_host()
    runner = ProcrastinateRunner(settings, sessionmaker)
    await runner.start()
    async with sessionmaker() as session:
        country, zone = PLACES[judging]
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
        if judging == "on":
            await integrations.create(session, host, actor, integration_schemas.IntegrationCreate(
                name="PE", provider_kind="compliance", provider_name="compliance_pe",
                config=PE_ANY_HOUR, secrets={}))
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
        refused = await session.scalar(select(func.count()).select_from(Interaction).where(
            Interaction.status != "queued"))
        print(f"pack judging {judging} (debtors in {country}, {zone}): queued {messages} "
              f"sends through the API path in {time.perf_counter() - started:.1f} s"
              + (f"; {refused} not queued" if refused else ""), flush=True)
    await runner.stop()
    await engine.dispose()
    return settings


async def wait_until_sent(url: str, messages: int, limit_s: float,
                          pids: list[int]) -> tuple[float, float]:
    """Messages/s from the first to the last send the provider saw, and the workers' CPU
    seconds used before the first outcome was recorded (start-up, mostly)."""
    engine = make_engine(url)
    started = time.perf_counter()
    startup_cpu = float("nan")
    try:
        while time.perf_counter() - started < limit_s:
            async with engine.connect() as conn:
                done = await conn.scalar(select(func.count()).select_from(Interaction).where(
                    Interaction.status.in_(("sent", "failed"))))
            if done and startup_cpu != startup_cpu:
                startup_cpu = sum(cpu_seconds(p) for p in pids)
            if done >= messages:
                break
            await asyncio.sleep(0.05 if startup_cpu != startup_cpu else 0.2)
        async with engine.connect() as conn:
            first, last, sent = (await conn.execute(text(
                "SELECT min(at), max(at), count(*) FROM interaction_events "
                "WHERE status = 'sent'"))).one()
    finally:
        await engine.dispose()
    span = (last - first).total_seconds() if sent else float("nan")
    return (sent / span if sent and span > 0 else float("nan")), startup_cpu


async def pack_decisions(url: str) -> int:
    """How many batch-sender decisions a pack (not the gate alone) gave."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text(
                "SELECT count(*) FROM compliance_decisions WHERE path = 'batch' "
                "AND counted AND source <> 'gate'")) or 0)
    finally:
        await engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(args: argparse.Namespace, judging: str) -> str:
    """One bench run on a fresh database; returns its result line."""
    url = recreate_postgres(args.database_url)
    migrate.upgrade(url)
    asyncio.run(prepare(url, args.messages, f"http://127.0.0.1:{args.port}", judging))
    env = {**os.environ, "CARTERA_DATABASE_URL": url, "CARTERA_LOG_LEVEL": "WARNING"}
    profile = os.environ.get("BENCH_PROFILE")  # BENCH_PROFILE=w.prof: w.prof.on.0, ...
    pyspy = os.environ.get("BENCH_PYSPY")  # BENCH_PYSPY=w: py-spy raw stacks w.on.0.txt ...
    started = time.perf_counter()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(args.workers):
            command = [sys.executable,
                       *(["-m", "cProfile", "-o", f"{profile}.{judging}.{n}"] if profile
                         else []),
                       "-m", "cartera.cli", "worker", "--concurrency", str(args.concurrency)]
            if pyspy:
                command = [str(Path(sys.executable).with_name("py-spy")), "record", "--format",
                           "raw", "-r", "200", "-o", f"{pyspy}.{judging}.{n}.txt", "--",
                           *command]
            workers.append(subprocess.Popen(command, env=env))
        rate, startup = asyncio.run(wait_until_sent(url, args.messages, 300,
                                                    [w.pid for w in workers]))
        total = time.perf_counter() - started
        used = sum(cpu_seconds(w.pid) for w in workers)
    finally:
        for w in workers:
            w.send_signal(signal.SIGINT if pyspy else signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
    judged = asyncio.run(pack_decisions(url))
    per_k = (used - startup) / args.messages * 1000
    return (f"pack judging {judging} ({judged} pack verdicts): {args.messages} messages, "
            f"{args.workers} workers x {args.concurrency}: {rate:.0f} messages/s sustained "
            f"(first to last send), {args.messages / total:.0f} messages/s end to end incl. "
            f"worker start-up ({total:.1f} s); worker CPU {used:.1f} s in all, "
            f"{startup:.1f} s of it before the first send, {per_k:.2f} s per 1000 messages "
            f"after it; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_send")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--pack-judging", choices=("on", "off", "both"), default="both",
                        help="whether the PE compliance pack judges each message")
    args = parser.parse_args()
    # PostgreSQL needs an explicit master key (this process seals the integration's secrets,
    # the workers open them), and the workers may reach only the loopback fake provider.
    os.environ.setdefault("CARTERA_MASTER_KEY",
                          base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("CARTERA_EGRESS_ALLOW", f"127.0.0.1:{args.port}")
    cases = ("off", "on") if args.pack_judging == "both" else (args.pack_judging,)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fake_provider.py").write_text(FAKE_PROVIDER)
        provider = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fake_provider:app", "--host", "127.0.0.1",
             "--port", str(args.port), "--log-level", "warning", "--no-access-log"],
            cwd=tmp)
        try:
            time.sleep(1.5)
            lines = [run_case(args, judging) for judging in cases]
        finally:
            provider.terminate()
            provider.wait(timeout=10)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
