"""Replanning one debtor after an event, on PostgreSQL, in a portfolio of enrolled debtors.

    .venv/bin/python bench/bench_replan.py [--database-url postgresql://...]
        [--debtors 100000] [--samples 200] [--reuse]

Drops and recreates the database, fills it as ``bench_segmentation.py`` does (debtors,
three obligations each, balances, its 10-segment rule set), runs one segmentation pass,
configures two active strategies (one bound to the big-debt segments, priority 1; one to
every overdue segment, priority 2; two message steps each), runs one planner pass (which
enrolls the overdue debtors), activates a version 2 of each with a stop rule (enrollments
move by step key) and prints, over random enrolled debtors, one transaction each,
committed:

* the replanning of the debtor alone (``cartera.strategies.replan.replan_debtor``: exit,
  enroll, stop rule, plan, contact policy, advance, gate — the chain's last step);
* the chain of an inbound reply (``cartera.changes.debtor_changed(kind="reply")``:
  summary refresh, re-segmentation, then the replanning), for comparison.

Target: replanning one debtor after an event <= 20 ms median. The machine is shared: the
load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from _common import median, percentile, recreate_postgres
from bench_segmentation import _engine, build, full_runs
from sqlalchemy import event, select, text

from cartera import changes
from cartera.api.context import Actor
from cartera.db import migrate
from cartera.db.engine import make_sessionmaker
from cartera.messaging.models import MessageTemplate
from cartera.plugins.registry import current_host
from cartera.segmentation.models import Segment
from cartera.strategies import schemas, service
from cartera.strategies.models import Enrollment
from cartera.strategies.planner import plan_tenant
from cartera.strategies.replan import replan_debtor

OVERDUE = ("late_big", "late", "mid_big", "mid", "early_lima", "early_big", "early")
"""Not "judicial" (43% of the portfolio): the first whole-portfolio pass's contact-policy
statement grows with the square of the actions it plans in one go (see the issue 12
report), which would make this bench's set-up, not its figure, take most of its time."""
BIG = ("late_big", "mid_big", "early_big")


def _steps(template_id: int) -> list[dict[str, Any]]:
    sms = [{"channel": "sms", "template_id": template_id}]
    return [{"key": "first", "kind": "message", "anchor": "oldest_unpaid_due_date",
             "offset_days": 1, "channels": sms},
            {"key": "second", "kind": "message", "anchor": "previous_step", "offset_days": 3,
             "channels": sms}]


async def configure(url: str, tenant_id: int) -> list[tuple[int, Any]]:
    engine = _engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            session.info["tenant_id"] = tenant_id
            template = MessageTemplate(tenant_id=tenant_id, code="remind", channel="sms",
                                       locale="es-PE", name="remind",
                                       body="Hola {{ debtor.name }}")
            session.add(template)
            await session.flush()
            ids = {c: i for c, i in (await session.execute(select(Segment.code, Segment.id)
                   .where(Segment.tenant_id == tenant_id, Segment.active))).all()}
            actor = Actor(tenant_id, None, None)
            made = []
            for code, segs, priority in (("big", BIG, 1), ("collect", OVERDUE, 2)):
                version = {"segment_ids": [ids[c] for c in segs if c in ids],
                           "steps": _steps(template.id)}
                s = await service.create(session, actor, msgspec.convert({
                    "code": code, "name": code, "priority": priority, "version": version},
                    schemas.StrategyCreate))
                await service.activate(session, actor, s.id, 1, schemas.Activate())
                made.append((s.id, version))
            await session.commit()
        return made
    finally:
        await engine.dispose()


async def add_stop_rules(url: str, tenant_id: int, made: list[tuple[int, Any]]) -> None:
    """Version 2 of each strategy, with a stop rule, activated after the first pass (the
    enrollments move to it by step key): the replanning evaluates the rule for its debtor.
    The whole-portfolio stop-rule statement is the planning bench's concern."""
    engine = _engine(url)
    stop = {"feature": "days_past_due", "op": "gte", "value": 3000}
    try:
        async with make_sessionmaker(engine)() as session:
            session.info["tenant_id"] = tenant_id
            actor = Actor(tenant_id, None, None)
            for strategy_id, version in made:
                await service.add_version(session, actor, strategy_id, msgspec.convert(
                    {**version, "stop_rule": stop}, schemas.VersionIn))
                await service.activate(session, actor, strategy_id, 2,
                                       schemas.Activate(in_flight="same_key"))
            await session.commit()
    finally:
        await engine.dispose()


async def first_pass(url: str, tenant_id: int) -> tuple[float, Any]:
    engine = _engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            session.info["tenant_id"] = tenant_id
            started = time.perf_counter()
            result = await plan_tenant(session, current_host(), tenant_id)
            await session.commit()
            took = time.perf_counter() - started
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    return took, result


async def samples(url: str, tenant_id: int, n: int) -> tuple[list[float], list[float], int]:
    engine = _engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            enrolled = list((await session.scalars(select(Enrollment.debtor_id).where(
                Enrollment.tenant_id == tenant_id, Enrollment.status == "active"))).all())
        seen: list[int] = [0]

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(*args: Any) -> None:
            seen[0] += 1

        rng = random.Random(12)
        replans, chains, pings, statements, cpu = [], [], [], [], []
        for i in range(2 * n + 10):
            debtor_id = rng.choice(enrolled)
            async with engine.connect() as conn:
                started = time.perf_counter()
                await conn.execute(text("SELECT 1"))
                pings.append(time.perf_counter() - started)
            async with make_sessionmaker(engine)() as session:
                session.info["tenant_id"] = tenant_id
                seen[0] = 0
                started, used = time.perf_counter(), time.process_time()
                if i % 2 == 0:
                    await replan_debtor(session, tenant_id, debtor_id)
                else:
                    await changes.debtor_changed(session, tenant_id, debtor_id, "reply")
                await session.commit()
                took = time.perf_counter() - started
                used = time.process_time() - used
            if i >= 10:  # the first few warm the caches and the pool
                (replans if i % 2 == 0 else chains).append(took)
                if i % 2 == 0:
                    statements.append(seen[0])
                    cpu.append(used)
    finally:
        await engine.dispose()
    print(f"  statements per replanning: median {median(statements):.0f}; this process's "
          f"CPU per replanning: median {median(cpu) * 1000:.1f} ms; one SELECT 1 round trip: "
          f"median {median(pings) * 1000:.2f} ms", flush=True)
    return replans, chains, len(enrolled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/cartera_bench_replan")
    parser.add_argument("--debtors", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the portfolio, strategies and enrollments of the last run")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{args.debtors:,} debtors", flush=True)
    as_of = date.today()
    url = "postgresql+psycopg://" + args.database_url.split("://", 1)[1]
    if args.reuse:
        async def tenant() -> int:
            engine = _engine(url)
            async with engine.connect() as conn:
                found = int((await conn.execute(text(
                    "SELECT id FROM tenants WHERE slug = 'bench'"))).scalar_one())
            await engine.dispose()
            return found
        tenant_id = asyncio.run(tenant())
    else:
        url = recreate_postgres(args.database_url)
        migrate.upgrade(url)
        tenant_id = asyncio.run(build(url, args.debtors, args.debtors * 3, as_of))
        asyncio.run(full_runs(url, tenant_id, as_of, runs=1))
        made = asyncio.run(configure(url, tenant_id))
        took, result = asyncio.run(first_pass(url, tenant_id))
        print(f"  first planner pass: {took:.1f} s, {result.as_dict()}", flush=True)
        asyncio.run(add_stop_rules(url, tenant_id, made))
    replans, chains, enrolled = asyncio.run(samples(url, tenant_id, args.samples))
    print(f"\nresults ({enrolled:,} enrolled debtors; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  replan one debtor: median {median(replans) * 1000:.1f} ms, p90 "
          f"{percentile(replans, 0.9) * 1000:.1f} ms of {len(replans)} (target <= 20 ms)")
    print(f"  chain of a reply (re-segment + replan): median {median(chains) * 1000:.1f} ms, "
          f"p90 {percentile(chains, 0.9) * 1000:.1f} ms of {len(chains)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
