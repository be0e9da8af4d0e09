"""The strategy engine at portfolio scale on PostgreSQL: daily planning, dispatch, simulation.

    .venv/bin/python bench/bench_planner.py [--database-url postgresql://...]
        [--debtors 1000000] [--dispatch 100000] [--sim-debtors 100000] [--sim-days 30]
        [--skip-sim]

Drops and recreates the database, migrates, fills the portfolio set-based (the debtors and
obligations of ``bench_segmentation``, one phone with consent per debtor), places every
debtor with a real segmentation run, and configures two strategies over the segments (a
message with an SMS → e-mail fallback, a second message two days later, a collector task),
with the installed plugins' host (the country packs included: every debtor is in PE, so the
PE pack judges each planned contact). Then prints:

* **first day**: the pass that enrolls every debtor and plans their first step (gate
  included), with the time of each planner phase;
* **daily planning** of the enrolled portfolio two days later (the first contacts taken
  as sent): the second step planned and gated for every debtor (target <= 30 s at 1M);
* **dispatch**: the dispatch job's loop (``dispatch_all``: batches of ``dispatch.BATCH``
  sharing one run) until ``--dispatch`` due messages are enqueued as interactions (target
  100,000 <= 10 s);
* **simulation**: 30 days over a ``--sim-debtors`` portfolio of its own (target 100,000
  <= 60 s).

The machine is shared: each figure comes with the process's own CPU time (user + system)
and the load average, so a slow wall-clock figure on a loaded machine can be read as such.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import os
import resource
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import recreate_postgres, stage_sealed
from bench_segmentation import _engine, build
from sqlalchemy import func, select, text, update

from cartera.api.context import Actor
from cartera.db import migrate
from cartera.db.base import table_of
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.integrations import schemas as integration_schemas
from cartera.integrations import service as integrations
from cartera.jobs.runner import InProcessRunner
from cartera.messaging import schemas as messaging_schemas
from cartera.messaging import templates
from cartera.plugins.host import PluginHost, load_host
from cartera.segmentation import service as segmentation
from cartera.segmentation.models import Segment, SegmentRun
from cartera.strategies import dispatch, planner, schemas, service, simulate
from cartera.strategies.models import Action

ALWAYS_WEEK = schemas.WindowIn(start_hour=0, end_hour=24, weekdays=[1, 2, 3, 4, 5, 6, 7])


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class Timed:
    """Wall and CPU time of a block, printed with the load average."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.took = time.perf_counter() - self.wall
        self.cpu_took = cpu() - self.cpu
        print(f"  {self.label}: {self.took:,.1f} s wall, {self.cpu_took:,.1f} s CPU of this "
              f"process (load {load()})", flush=True)


PHASES: dict[str, float] = {}


def instrument() -> None:
    """Time each planner phase (wall) into :data:`PHASES`."""
    names = ("exit_unbound", "enroll", "stop_matched", "plan_actions", "supersede", "advance",
             "gate_planned", "hold_by_policy")
    for name in names:
        real: Callable[..., Awaitable[Any]] = getattr(planner, name)

        async def timed(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return await _real(*args, **kw)
            finally:
                PHASES[_name] = PHASES.get(_name, 0.0) + time.perf_counter() - started

        setattr(planner, name, timed)


SIM_PHASES = ("evaluate", "plan_tenant", "_execute", "_figures", "_take_as_sent")


def instrument_simulation() -> None:
    """Time each phase of the simulation (wall, summed over the days) into :data:`PHASES`."""
    for name in SIM_PHASES:
        real: Callable[..., Awaitable[Any]] | None = getattr(simulate, name, None)
        if real is None:
            continue

        async def timed(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return await _real(*args, **kw)
            finally:
                PHASES["sim." + _name] = (PHASES.get("sim." + _name, 0.0)
                                          + time.perf_counter() - started)

        setattr(simulate, name, timed)


def phases() -> str:
    found = ", ".join(f"{k} {v:.1f} s" for k, v in PHASES.items() if v >= 0.05)
    PHASES.clear()
    return found


async def configure(url: str, debtors: int, host: PluginHost, as_of: date) -> int:
    tenant_id = await build(url, debtors, debtors * 3, as_of)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        ids = (await session.execute(text("SELECT id FROM debtors WHERE tenant_id = :t"),
                                     {"t": tenant_id})).scalars().all()
        await stage_sealed(session, "contact_points.value",
                           ((i, f"+5198{i:07d}") for i in ids))  # sealed, as stored
        await session.execute(text(
            "INSERT INTO contact_points (tenant_id, debtor_id, kind, value, consent, "
            "opted_out_channels, suppressions, origin, preferred, created_at, updated_at) "
            "SELECT d.tenant_id, d.id, 'phone', b.v, 'granted', "
            "'[]'::jsonb, '{}'::jsonb, 'debtor_provided', true, now(), now() "
            "FROM debtors d JOIN bench_sealed b ON b.g = d.id WHERE d.tenant_id = :t"),
            {"t": tenant_id})
        await session.commit()
        run = SegmentRun(tenant_id=tenant_id, status="queued", as_of=as_of, counts={},
                         debtors=0, moves=0)
        session.add(run)
        await session.flush()
        await segmentation.run_segmentation(session, run, as_of)
        session.info["tenant_id"] = tenant_id
        actor = Actor(tenant_id, None, None)
        segments = list((await session.scalars(select(Segment.id).where(
            Segment.tenant_id == tenant_id))).all())
        sms = await templates.create(session, actor, messaging_schemas.TemplateCreate(
            code="r", channel="sms", locale="es-PE", name="r",
            body="Hola {{ debtor.first_name }}, recuerda tu pago."))
        mail = await templates.create(session, actor, messaging_schemas.TemplateCreate(
            code="m", channel="email", locale="es-PE", name="m", subject="Pago",
            body="Recuerda tu pago.", html="<p>Recuerda tu pago.</p>"))
        chain = [schemas.ChannelIn(channel="sms", template_id=sms.id),
                 schemas.ChannelIn(channel="email", template_id=mail.id)]
        steps = [schemas.StepIn(key="first", kind="message", window=ALWAYS_WEEK,
                                channels=chain),
                 schemas.StepIn(key="second", kind="message", offset_days=2,
                                window=ALWAYS_WEEK, channels=chain),
                 schemas.StepIn(key="call", kind="task", offset_days=3, window=ALWAYS_WEEK,
                                task=schemas.TaskIn(queue="calls"))]
        half = max(1, len(segments) // 2)
        for i, bound in enumerate((segments[:half], segments[half:] or segments[:1])):
            strategy = await service.create(session, actor, schemas.StrategyCreate(
                code=f"s{i}", name=f"s{i}", priority=i + 1,
                version=schemas.VersionIn(segment_ids=bound, steps=steps)))
            await service.activate(session, actor, strategy.id, 1, schemas.Activate(), host)
        await integrations.create(session, host, actor, integration_schemas.IntegrationCreate(
            name="SMS", provider_kind="channel", provider_name="fixture_sms",
            config={"base_url": "http://127.0.0.1:9"},
            secrets={"api_key": "k", "webhook_secret": "s"}))
        await session.commit()
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    return tenant_id


async def plan_pass(url: str, host: PluginHost, tenant_id: int, at: datetime,
                    label: str) -> float:
    engine = _engine(url)  # BENCH_SLOW_MS=500 prints the statements slower than that
    async with make_sessionmaker(engine)() as session:
        session.info["tenant_id"] = tenant_id
        with Timed(label) as t:
            result = await planner.plan_tenant(session, host, tenant_id, at)
            await session.commit()
        print(f"    {result.as_dict()}\n    phases: {phases()}", flush=True)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE actions, enrollments"))
    await engine.dispose()
    return t.took


async def take_as_sent(url: str, tenant_id: int) -> None:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        a = table_of(Action)
        await session.execute(update(a).where(a.c.tenant_id == tenant_id,
                                              a.c.status == "planned").values(
            status="dispatched"))
        await session.commit()
    await engine.dispose()


async def dispatch_many(url: str, host: PluginHost, tenant_id: int, at: datetime,
                        wanted: int) -> float:
    engine = _engine(url)
    sessionmaker = make_sessionmaker(engine)
    runner = InProcessRunner(sessionmaker, background=False)
    async with sessionmaker() as session:  # after any deferral (a holiday, say)
        latest = await session.scalar(text(
            "SELECT max(planned_at) FROM actions WHERE tenant_id = :t "
            "AND status IN ('planned', 'deferred')"), {"t": tenant_id})
    at = max(at, latest or at)
    profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    with Timed(f"dispatch of {wanted:,} due messages") as t:
        if profiler is not None:
            profiler.enable()
        counts = await dispatch.dispatch_all(sessionmaker, host, runner, tenant_id, at,
                                             most=wanted)
        done = sum(counts.values())
        if profiler is not None:
            profiler.disable()
    if profiler is not None:  # BENCH_PROFILE=file.prof: the dispatch phase's profile
        profiler.dump_stats(os.environ["BENCH_PROFILE"])
    async with sessionmaker() as session:
        queued = int(await session.scalar(text(
            "SELECT count(*) FROM interactions WHERE tenant_id = :t"), {"t": tenant_id}) or 0)
    print(f"    {done:,} actions dispatched, {queued:,} interactions queued", flush=True)
    await engine.dispose()
    return t.took


async def simulation(url: str, host: PluginHost, tenant_id: int, days: int) -> float:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        session.info["tenant_id"] = tenant_id
        profiler = cProfile.Profile() if os.environ.get("BENCH_SIM_PROFILE") else None
        per_day: list[float] = []
        last = [time.perf_counter()]

        async def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            per_day.append(now - last[0])
            last[0] = now

        with Timed(f"simulation of {days} days") as t:
            if profiler is not None:
                profiler.enable()
            out = await simulate.simulate(session, host, tenant_id, None, days, progress)
            await session.rollback()
            if profiler is not None:
                profiler.disable()
        if profiler is not None:  # BENCH_SIM_PROFILE=file.prof: the simulation's profile
            profiler.dump_stats(os.environ["BENCH_SIM_PROFILE"])
        fired = sum(sum(d.actions_per_channel.values()) for d in out.days)
        print(f"    phases: {phases()}", flush=True)
        print("    per day (s): " + " ".join(f"{x:.1f}" for x in per_day), flush=True)
        print(f"    {fired:,} actions would fire; day 1 {out.days[0].actions_per_channel}",
              flush=True)
        left = await session.scalar(select(func.count()).select_from(Action))
        print(f"    actions kept after the simulation: {left}", flush=True)
    await engine.dispose()
    return t.took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_planner")
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--dispatch", type=int, default=100_000)
    parser.add_argument("--sim-debtors", type=int, default=100_000)
    parser.add_argument("--sim-days", type=int, default=30)
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--only-sim", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("CARTERA_MASTER_KEY",
                          base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    host = load_host()
    packs = sorted(r.provider.name for r in host.providers["compliance"].values())
    print(f"machine: {os.cpu_count()} cores, load {load()}; compliance packs: {packs}",
          flush=True)
    instrument()
    instrument_simulation()
    # 10:00 in Lima (15:00 UTC) of the next Monday to Wednesday, so the first day and the
    # day two later are working days inside the PE pack's hours.
    day1 = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    day1 += timedelta(days=1)
    while day1.isoweekday() > 3:
        day1 += timedelta(days=1)
    as_of = day1.date()
    first = daily = sent = None
    if not args.only_sim:
        url = recreate_postgres(args.database_url)
        migrate.upgrade(url)
        print(f"planning and dispatch, {args.debtors:,} debtors:", flush=True)
        with Timed("build"):
            tenant_id = asyncio.run(configure(url, args.debtors, host, as_of))
        first = asyncio.run(plan_pass(url, host, tenant_id, day1, "first day (enroll + plan)"))
        asyncio.run(take_as_sent(url, tenant_id))
        daily = asyncio.run(plan_pass(url, host, tenant_id, day1 + timedelta(days=2),
                                      "daily planning, 2 days later"))
        sent = asyncio.run(dispatch_many(url, host, tenant_id, day1 + timedelta(days=2),
                                         args.dispatch))
    sim = None
    if not args.skip_sim:
        sim_url = recreate_postgres(args.database_url + "_sim")
        migrate.upgrade(sim_url)
        print(f"simulation, {args.sim_debtors:,} debtors:", flush=True)
        with Timed("build"):
            sim_tenant = asyncio.run(configure(sim_url, args.sim_debtors, host, as_of))
        sim = asyncio.run(simulation(sim_url, host, sim_tenant, args.sim_days))
    print("\nresults")
    if first is not None and daily is not None and sent is not None:
        print(f"  first day (enroll + plan {args.debtors:,}): {first:,.1f} s")
        print(f"  daily planning of {args.debtors:,} enrolled debtors: {daily:,.1f} s "
              "(target <= 30 s at 1,000,000)")
        print(f"  dispatch of {args.dispatch:,} due messages: {sent:,.1f} s (target <= 10 s "
              "at 100,000)")
    if sim is not None:
        print(f"  simulation of {args.sim_days} days over {args.sim_debtors:,} debtors: "
              f"{sim:,.1f} s (target <= 60 s at 100,000)")
    print(f"  load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
