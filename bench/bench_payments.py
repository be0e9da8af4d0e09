"""Webhook to reconciled payment: latency per Mercado Pago notification on PostgreSQL.

    .venv/bin/python bench/bench_payments.py [--notifications 1000] [--duplicates 0.2]
        [--database-url postgresql://postgres@127.0.0.1/cartera_bench_payments]

Recreates the database, migrates it, and builds through the API (the real app over ASGI,
in process) a tenant with one debtor per distinct payment (an overdue obligation, a pending
promise to pay), segment rules that read money and promises, a strategy whose stop rule is
"nothing owed" with every debtor enrolled, a Mercado Pago integration pointing at the
plugin's strict fake (served on 127.0.0.1) and one payment link per debtor. The fake then
holds one approved payment per link.

Each notification is timed from the signed POST to the webhook URL until its processing
job has finished: signature check and storage, the job (parse, re-fetch of the payment from
the fake, one payment allocated to the link's obligation, balance summary, promise
settlement, re-segmentation, replanning of the debtor). ``--duplicates`` of the
notifications repeat an earlier one (same notification id: a redelivery). Prints the median,
p90, p99 and max latency, for new and duplicate notifications apart, and checks that every
payment was recorded exactly once. Then, per step of the path (the route's verification and
storage, the job's parse and dedupe, the re-fetch, the apply, each step of the
:mod:`cartera.changes` chain, the commits, the rest: job runner and HTTP), the mean wall and
CPU milliseconds and SQL statements per notification, for new and duplicate ones apart
(``--no-breakdown`` leaves the functions unwrapped). Loopback only; bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import random
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, percentile, recreate_postgres
from cartera_sdk.testkit import FakeHTTPServer
from litestar.testing import AsyncTestClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes
from cartera.api.app import create_app
from cartera.auth.clients import create_client
from cartera.db import migrate
from cartera.integrations import webhooks
from cartera.integrations.models import Integration
from cartera.integrations.service import webhook_url
from cartera.jobs.registry import HANDLERS
from cartera.jobs.runner import InProcessRunner
from cartera.negotiation.models import Promise
from cartera.payments import reconcile
from cartera.payments.allocation import DebtorScope, rebalance
from cartera.payments.models import Payment
from cartera.portfolio.models import ContactPoint, Debtor, Obligation
from cartera.portfolio.service import tenant_today
from cartera.settings import Settings
from cartera.tenants.service import create_tenant

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "plugins" / "mercadopago" / "tests" / "mercadopago_fake.py"


def load_fake() -> Any:
    spec = importlib.util.spec_from_file_location("mercadopago_fake", FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mercadopago_fake"] = module
    spec.loader.exec_module(module)
    return module


async def ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def setup(http: Any, app: Any, mp: Any, fake: Any, debtors: int) -> tuple[int, str]:
    async with app.state.ctx.sessionmaker() as session:
        tenant = await create_tenant(session, slug="bench", name="Bench", country="PE",
                                     currency="PEN")
        client, secret = await create_client(session, tenant.id, "bench", None)
        await session.commit()
    token = (await ok(await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                      auth=(client.client_id, secret)), 200))["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    integ = await ok(await http.post("/v1/integrations", json={
        "name": "Mercado Pago", "provider_kind": "payment", "provider_name": "mercadopago",
        "config": {"base_url": mp.server.base_url},
        "secrets": {"access_token": fake.ACCESS_TOKEN, "webhook_secret": fake.WEBHOOK_SECRET}}))
    segs = await ok(await http.put("/v1/segments", json={"segments": [
        {"code": "kept", "name": "Kept a promise", "rule": {
            "feature": "kept_promises", "op": "gte", "value": 1}},
        {"code": "paid", "name": "Paid recently", "rule": {
            "feature": "payments_last_days", "days": 30, "op": "gte", "value": 1}},
        {"code": "late", "name": "Late", "rule": {
            "feature": "days_past_due", "op": "gte", "value": 1}},
        {"code": "rest", "name": "Everyone else", "rule": {"all": []}},
    ]}), 200)
    late = next(s["id"] for s in segs["segments"] if s["code"] == "late")
    template = await ok(await http.post("/v1/templates", json={
        "code": "pay", "channel": "sms", "locale": "es-PE", "name": "Pague",
        "body": "Hola {{ debtor.first_name }}, pague aqui: {{ links.payment }}"}))
    always = {"start_hour": 0, "end_hour": 24, "weekdays": [1, 2, 3, 4, 5, 6, 7]}
    strategy = await ok(await http.post("/v1/strategies", json={
        "code": "remind", "name": "Remind", "priority": 100, "version": {
            "segment_ids": [late], "stop_rule": {
                "feature": "outstanding_amount", "op": "lte", "value": "0.00",
                "currency": "PEN"},
            "steps": [{"key": k, "kind": "message", "anchor": "previous_step",
                       "offset_days": 3, "window": always,
                       "channels": [{"channel": "sms", "template_id": template["id"]}]}
                      for k in ("one", "two")]}}))
    await ok(await http.post(f"/v1/strategies/{strategy['id']}/versions/1/activate",
                             json={}), 200)
    # Debtors, obligations and promises in bulk (the API would take minutes on a loaded
    # machine), then the tenant's allocation and segmentation as an import leaves them.
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.id
        today = await tenant_today(session, tenant.id)
        rows = [Debtor(tenant_id=tenant.id, external_ref=f"B{i}", name=f"Deudor {i}",
                       country="PE", timezone="America/Lima", kind="person", attributes={})
                for i in range(debtors)]
        session.add_all(rows)
        await session.flush()
        for i, d in enumerate(rows):
            session.add(ContactPoint(tenant_id=tenant.id, debtor_id=d.id, kind="phone",
                                     value=f"+5199{i:07d}", consent="granted"))
            session.add(Obligation(tenant_id=tenant.id, debtor_id=d.id,
                                   external_ref=f"B{i}-F", kind="invoice", currency="PEN",
                                   original_minor=15000, prior_paid_minor=0,
                                   outstanding_minor=15000, due_date=date(2026, 10, 1)))
            session.add(Promise(tenant_id=tenant.id, debtor_id=d.id, currency="PEN",
                                amount_minor=15000, paid_minor=0, promised_date=today,
                                created_on=today, created_by="bench"))
        await session.flush()
        await rebalance(session, tenant.id, DebtorScope.tenant(tenant.id), today)
        await session.commit()
        ids = [d.id for d in rows]
    await ok(await http.post("/v1/segments/runs", json={}), 202)
    await app.state.ctx.jobs.run_pending()

    async def one(i: int, debtor_id: int) -> None:
        link = await ok(await http.post("/v1/payment-links", json={
            "debtor_id": debtor_id, "currency": "PEN"}))
        mp.add_payment(str(5_000_000 + i), "150.00", external_reference=f"plink_{link['id']}")
        mp.payments[str(5_000_000 + i)]["date_approved"] = \
            time.strftime("%Y-%m-%dT%H:%M:%S.000-05:00")

    for start in range(0, len(ids), 8):
        await asyncio.gather(*(one(i, ids[i]) for i in range(start, min(start + 8, len(ids)))))
    await ok(await http.post("/v1/strategies/plan", json={}), 202)
    await app.state.ctx.jobs.run_pending()
    async with app.state.ctx.sessionmaker() as session:
        integration = await session.get(Integration, integ["id"])
        assert integration is not None
        path = webhook_url("", integration)
    return tenant.id, path


class Breakdown:
    """Self wall and CPU time and SQL statements per named step, summed over a run.

    Steps nest (a step's own time excludes the steps it calls); what runs outside every
    step is ``rest``. One notification is in flight at a time, so one stack serves."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.stmts: dict[str, int] = defaultdict(int)
        self.mark = (time.perf_counter(), time.process_time())
        self.trace = False

    def _credit(self) -> None:
        now = (time.perf_counter(), time.process_time())
        top = self.stack[-1] if self.stack else "rest"
        self.wall[top] += now[0] - self.mark[0]
        self.cpu[top] += now[1] - self.mark[1]
        self.mark = now

    def statement(self, conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        self.stmts[self.stack[-1] if self.stack else "rest"] += 1
        if self.trace:
            print(f"    [{self.stack[-1] if self.stack else 'rest'}] "
                  f"{' '.join(sql.split())[:160]}")

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            self._credit()
            self.stack.append(name)
            try:
                return await fn(*args, **kwargs)
            finally:
                self._credit()
                self.stack.pop()
        return timed

    def install(self, app: Any) -> None:
        event.listen(app.state.ctx.engine.sync_engine, "before_cursor_execute", self.statement)
        webhooks.receive = self.wrap("route: verify + store", webhooks.receive)
        HANDLERS["webhooks.process"] = self.wrap("job: parse + dedupe",
                                                 HANDLERS["webhooks.process"])
        webhooks.reconcile_pending = self.wrap("job: pending events",
                                               webhooks.reconcile_pending)
        reconcile._load = self.wrap("reconcile: load integration", reconcile._load)
        fetch = reconcile.confirm_payment_event
        reconcile.confirm_payment_event = self.wrap("re-fetch (HTTP)", fetch)  # type: ignore
        reconcile.apply_view = self.wrap("apply: record + allocate link", reconcile.apply_view)
        reconcile.refresh_debtor = self.wrap("refresh_debtor: lock", reconcile.refresh_debtor)
        changes.steps()
        for name in changes.ORDER:
            changes._steps[name] = self.wrap(f"chain: {name}", changes._steps[name])
        AsyncSession.commit = self.wrap("commit", AsyncSession.commit)  # type: ignore

    def snapshot(self) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
        self._credit()
        return dict(self.wall), dict(self.cpu), dict(self.stmts)


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: after[k] - before.get(k, 0) for k in after}


def print_breakdown(title: str, count: int, parts: list[dict[str, Any]]) -> None:
    wall, cpu, stmts = parts
    if not count:
        return
    print(f"{title} ({count}), mean per notification:")
    for name in sorted(wall, key=lambda k: -wall[k]):
        print(f"  {name:<32} wall {wall[name] * 1000 / count:7.2f} ms  "
              f"cpu {cpu.get(name, 0) * 1000 / count:7.2f} ms  "
              f"sql {stmts.get(name, 0) / count:5.1f}")
    print(f"  {'total':<32} wall {sum(wall.values()) * 1000 / count:7.2f} ms  "
          f"cpu {sum(cpu.values()) * 1000 / count:7.2f} ms  "
          f"sql {sum(stmts.values()) / count:5.1f}")


def signed(fake: Any, payment_id: str, notification_id: int) -> tuple[bytes, dict[str, str]]:
    ts = str(int(time.time()))
    request_id = f"req-{notification_id}"
    body = json.dumps({"id": notification_id, "live_mode": True, "type": "payment",
                       "action": "payment.updated", "api_version": "v1",
                       "data": {"id": payment_id}}).encode()
    return body, {"Content-Type": "application/json", "x-request-id": request_id,
                  "x-signature": fake.sign(fake.WEBHOOK_SECRET, payment_id, request_id, ts)}


async def run(args: argparse.Namespace, url: str) -> None:
    fake = load_fake()
    distinct = round(args.notifications * (1 - args.duplicates))
    settings = Settings(database_url=url, issuer="http://testserver.local",
                        public_base_url="https://cartera.example.com", log_level="ERROR",
                        jobs_inline=True, egress_allow="127.0.0.1",
                        rate_limit_token="100000/minute", rate_limit_webhooks="100000/minute",
                        rate_limit_expensive="100000/minute")
    app = create_app(settings, runner_factory=lambda s, sm: InProcessRunner(sm,
                                                                            background=False))
    with FakeHTTPServer() as server:
        mp = fake.FakeMercadoPago(server).install()
        async with AsyncTestClient(app) as http:
            started = time.perf_counter()
            tenant_id, path = await setup(http, app, mp, fake, distinct)
            print(f"setup: {distinct} debtors, links and provider payments in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            del http.headers["Authorization"]  # the webhook route is public (token in path)
            order = [(i, False) for i in range(distinct)]
            rng = random.Random(13)
            for _ in range(args.notifications - distinct):
                order.insert(rng.randrange(1, len(order) + 1), (-1, True))
            sent: list[int] = []
            new_ms: list[float] = []
            dup_ms: list[float] = []
            breakdown = Breakdown()
            if args.breakdown:
                breakdown.install(app)
            sums: dict[bool, list[dict[str, Any]]] = {False: [{}, {}, {}], True: [{}, {}, {}]}
            profiler: Any = None
            if args.profile and args.profile.endswith(".pstats"):
                import cProfile  # CPU time per function (pyinstrument's is wall time)
                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
            elif args.profile:
                from pyinstrument import Profiler  # a dev tool, not a dependency
                profiler = Profiler(async_mode="enabled")
                profiler.start()
            cpu0 = time.process_time()
            for i, duplicate in order:
                n = rng.choice(sent) if duplicate else i
                body, headers = signed(fake, str(5_000_000 + n), 900_000 + n)
                before = breakdown.snapshot()
                breakdown.trace = args.trace and i == 1 and not duplicate
                if breakdown.trace:
                    print("statements of the second new notification:")
                t0 = time.perf_counter()
                r = await http.post(f"{path}?data.id={5_000_000 + n}&type=payment",
                                    content=body, headers=headers)
                assert r.status_code == 200, r.text
                await app.state.ctx.jobs.run_pending()
                (dup_ms if duplicate else new_ms).append((time.perf_counter() - t0) * 1000)
                after = breakdown.snapshot()
                breakdown.trace = False
                for total, b, a in zip(sums[duplicate], before, after, strict=True):
                    for k, v in delta(b, a).items():
                        total[k] = total.get(k, 0) + v
                sent.append(n)
            cpu_s = time.process_time() - cpu0
            if profiler is not None and args.profile.endswith(".pstats"):
                profiler.disable()
                profiler.dump_stats(args.profile)
            elif profiler is not None:
                profiler.stop()
                await asyncio.to_thread(Path(args.profile).write_text,
                                        profiler.output_text(show_all=False))
            async with app.state.ctx.sessionmaker() as session:
                payments = await session.scalar(select(func.count()).select_from(Payment).where(
                    Payment.tenant_id == tenant_id, Payment.status == "applied"))
    everything = new_ms + dup_ms
    print(f"notifications: {len(everything)} ({len(dup_ms)} duplicates); payments recorded: "
          f"{payments} (expected {distinct})")
    for name, values in (("all", everything), ("new", new_ms), ("duplicate", dup_ms)):
        print(f"{name:>9}: median {median(values):6.1f} ms  p90 {percentile(values, .9):6.1f} ms"
              f"  p99 {percentile(values, .99):6.1f} ms  max {max(values):6.1f} ms")
    print(f"process CPU over the notifications: {cpu_s:.1f} s; wall: "
          f"{sum(everything) / 1000:.1f} s")
    if args.breakdown:
        print_breakdown("new", len(new_ms), sums[False])
        print_breakdown("duplicate", len(dup_ms), sums[True])
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} cores")
    assert payments == distinct, "a payment was lost or recorded twice"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_payments")
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="time the notifications only (no per-step wrappers)")
    parser.add_argument("--profile", metavar="PATH",
                        help="profile the notifications into PATH: CPU per function "
                             "(cProfile) for a .pstats PATH, else pyinstrument's text")
    parser.add_argument("--trace", action="store_true",
                        help="print the SQL statements of one new notification, per step")
    args = parser.parse_args()
    os.environ.setdefault("CARTERA_MASTER_KEY",
                          base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("CARTERA_HOME", f"/tmp/cartera-bench-payments-{os.getpid()}")
    url = recreate_postgres(args.database_url)
    migrate.upgrade(url)
    asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
