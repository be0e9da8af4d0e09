"""Dispatch: due message actions become queued interactions, in bulk, through messaging's
batched send path.

``strategies.dispatch`` (queued about once a minute per tenant with due actions, see
:func:`queue_due_dispatches`) claims up to :data:`BATCH` due actions with one ``UPDATE ...
SET status = 'dispatched' ... RETURNING`` (on PostgreSQL over ``FOR UPDATE SKIP LOCKED``
rows): an action is dispatched at most once, whatever runs at the same time. It then
loads what the gate reads with a few ``IN`` queries, re-runs the gate for each channel of
the step's fallback chain (the first channel with an integration, a usable contact point
and the gate's allowance wins; a deferral puts the action back as ``deferred`` until the
lawful instant; a denial of every channel makes it ``denied``), inserts the interactions
and their first timeline events with one multi-row INSERT each, and makes sure the batch
send job of each integration used waits (:func:`cartera.messaging.batch.ensure_batch_job`),
all in one transaction. Sending, retries and claim-before-send are messaging's.

Actions of paused enrollments wait. The same job executes the due task, stage change and
webhook steps (:mod:`.execute`), also claimed at most once per action.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import and_, bindparam, exists, insert, not_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.compliance import decisions
from cartera.db.base import UtcDateTime, table_of
from cartera.db.engine import tenant_session
from cartera.integrations.models import Integration
from cartera.jobs.registry import JobContext, current_runner, every_minute, job
from cartera.messaging import batch, gate
from cartera.messaging.models import Interaction, InteractionEvent
from cartera.plugins.host import PluginHost
from cartera.plugins.registry import current_host
from cartera.portfolio import aging
from cartera.strategies import policy
from cartera.strategies.execute import EXECUTED_KINDS, execute_due
from cartera.strategies.models import Action, Enrollment, StrategyVersion
from cartera.strategies.planner import (
    CONTACT_KINDS,
    Loaded,
    chain_of,
    gate_key,
    load_for_gate,
    pick_contact_point,
    window_fit,
)

KIND = "strategies.dispatch"
BATCH = 1000
DISPATCHABLE = ("planned", "deferred")


def _due(tenant_id: int, now: datetime) -> Any:
    a, e = table_of(Action), table_of(Enrollment)
    paused = exists().where(e.c.id == a.c.enrollment_id, e.c.status == "paused")
    return select(a.c.id).where(
        a.c.tenant_id == tenant_id, a.c.kind.in_(CONTACT_KINDS), a.c.status.in_(DISPATCHABLE),
        a.c.verdict.is_not(None), a.c.planned_at <= now, not_(paused))


async def claim(session: AsyncSession, tenant_id: int, now: datetime, limit: int) -> list[Any]:
    """Mark up to ``limit`` due actions dispatched and return them (id, debtor, version,
    step); rows another transaction holds are skipped on PostgreSQL."""
    a = table_of(Action)
    due = _due(tenant_id, now).order_by(a.c.planned_at, a.c.id).limit(limit)
    ids: Any = due.scalar_subquery()
    if session.get_bind().dialect.name == "postgresql":
        # materialised: inside IN the locking subquery may be rescanned, each rescan
        # skipping to other rows, so more than ``limit`` would be claimed
        picked = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        ids = select(picked.c.id)
    result = await session.execute(update(a).where(
        a.c.id.in_(ids), a.c.status.in_(DISPATCHABLE))
        .values(status="dispatched", updated_at=now)
        .returning(a.c.id, a.c.debtor_id, a.c.version_id, a.c.step_index, a.c.strategy_id,
                   a.c.due_on, a.c.attempt))
    return list(result.all())


async def channel_integrations(session: AsyncSession, host: PluginHost,
                               tenant_id: int) -> dict[str, list[int]]:
    """The tenant's enabled channel integrations by the channel their provider sends, in
    id order."""
    found: dict[str, list[int]] = defaultdict(list)
    for integration in await session.scalars(select(Integration).where(
            Integration.tenant_id == tenant_id, Integration.provider_kind == "channel",
            Integration.enabled).order_by(Integration.id)):
        registered = host.provider("channel", integration.provider_name)
        if registered is not None:
            found[registered.provider.channel].append(integration.id)
    return found


def _route(host: PluginHost, loaded: Loaded, row: Any, step: dict[str, Any],
           integrations: dict[str, list[int]], now: datetime) -> dict[str, Any]:
    """The first channel of the fallback chain that can be used now, or why none can."""
    debtor = loaded.debtors[row.debtor_id]
    dpd = aging.days_past_due(loaded.oldest.get(row.debtor_id), row.due_on)
    tried: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    for ch in chain_of(step, row.attempt):
        channel = ch["channel"]
        integration = ch.get("integration_id")
        if integration is None and integrations.get(channel):
            integration = integrations[channel][0]
        elif integration is not None and integration not in integrations.get(channel, []):
            integration = None
        if integration is None:
            tried.append({"channel": channel, "reasons": ["no_integration"]})
            continue
        cp = pick_contact_point(loaded.contacts.get(row.debtor_id, []), channel)
        verdict = gate.decide(host, debtor, cp, channel, now, dpd, loaded.recent[row.debtor_id],
                              policy=loaded.policy)
        last = {"verdict": {**gate.as_json(verdict), "channel": channel, "tried": list(tried)},
                "decision": verdict.decision, "until": verdict.until}
        if verdict.decision == "deny":
            tried.append({"channel": channel, "reasons": [r.code for r in verdict.reasons]})
            continue
        return {**last, "channel": channel, "integration_id": integration, "cp": cp,
                "template_id": ch["template_id"]}
    denied = last.get("verdict") or {"decision": "deny", "reasons": []}
    return {"decision": "deny", "verdict": {**denied, "tried": tried}}


def _hold(rules: policy.ContactPolicy, made: dict[int, list[datetime]], loaded: Loaded,
          row: Any, step: dict[str, Any], routed: dict[str, Any],
          now: datetime) -> dict[str, Any]:
    """The contact policy again at dispatch, over the contacts made (and those of this
    batch): a contact it holds back goes back deferred inside the step's window."""
    mine = sorted(made.get(row.debtor_id, []))
    zone = loaded.debtors[row.debtor_id].timezone
    at, held = policy.place(rules, mine, now, lambda t: window_fit(t, zone, step["window"]))
    if not held:
        made.setdefault(row.debtor_id, []).append(now)
        return routed
    denied = policy.check(rules, mine, at) is not None
    return {"decision": "deny" if denied else "defer", "until": None if denied else at,
            "verdict": policy.held_verdict(routed["verdict"], held, at, denied)}


async def dispatch_due(session: AsyncSession, host: PluginHost, runner: Any, tenant_id: int,
                       now: datetime | None = None, limit: int = BATCH) -> dict[str, int]:
    """One batch of due actions, in the caller's transaction; counts per outcome.

    The fallback chain is judged once per distinct :func:`route_key` (the gate and the
    packs are pure functions of it: in a portfolio, per step, country, zone, day, days past
    due and contact state), each action then takes its own contact point."""
    now = now or clock.now()
    rows = await claim(session, tenant_id, now, limit)
    if not rows:
        return {}
    steps = {v.id: v.steps for v in (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.id.in_({r.version_id for r in rows})))).all()}
    loaded = await load_for_gate(session, host, tenant_id, [r.debtor_id for r in rows],
                                 now - timedelta(days=7))
    integrations = await channel_integrations(session, host, tenant_id)
    rules = await policy.load_policy(session, tenant_id)
    made = await policy.contacts_made(
        session, [r.debtor_id for r in rows],
        now - policy.WEEK - timedelta(hours=rules.min_gap_hours or 0)) if rules.active else {}
    sends, back = [], []
    found: list[dict[str, Any]] = []
    memo: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        step = steps[r.version_id][r.step_index]
        key = route_key(loaded, r, step, now)
        routed = memo.get(key)
        if routed is None:
            memo[key] = routed = _route(host, loaded, r, step, integrations, now)
        if "channel" in routed:  # this debtor's own contact point of the chosen channel
            routed = {**routed, "cp": pick_contact_point(
                loaded.contacts.get(r.debtor_id, []), routed["channel"])}
        verdict = routed.get("verdict") or {}
        if verdict.get("reasons"):  # the gate judged (not only: no integration)
            found += decisions.rows(tenant_id, "dispatch", now,
                                    {**verdict, "decision": routed["decision"],
                                     "until": routed.get("until")},
                                    str(verdict.get("channel") or routed.get("channel") or ""),
                                    r.debtor_id, r.id)
        if routed["decision"] == "allow" and rules.active:
            routed = _hold(rules, made, loaded, r, step, routed, now)
        if routed["decision"] == "allow":
            sends.append((r, routed))
        else:
            back.append({"b_id": r.id, "b_status": "denied" if routed["decision"] == "deny"
                         else "deferred", "b_verdict": routed["verdict"],
                         "b_at": routed.get("until") or now})
    await decisions.record(session, found)  # one INSERT for the whole batch
    a = table_of(Action)
    if back:
        await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), verdict=bindparam("b_verdict", type_=a.c.verdict.type),
            planned_at=bindparam("b_at", type_=UtcDateTime()), updated_at=now), back)
    if sends:
        await _enqueue(session, runner, tenant_id, sends, now)
    return {"dispatched": len(sends), "deferred": sum(b["b_status"] == "deferred" for b in back),
            "denied": sum(b["b_status"] == "denied" for b in back)}


def route_key(loaded: Loaded, row: Any, step: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    """Everything :func:`_route` reads about one action but the contact point ids: two
    actions with the same key are routed to the same channel with the same verdict."""
    chain = chain_of(step, row.attempt)
    return (row.version_id, row.step_index, row.attempt,
            *gate_key(loaded, row.debtor_id, chain, now, row.due_on))


_ENQUEUE = text("""
    WITH v AS (
        SELECT * FROM unnest(CAST(:actions AS bigint[]), CAST(:debtors AS bigint[]),
                             CAST(:channels AS text[]), CAST(:integrations AS bigint[]),
                             CAST(:templates AS bigint[]), CAST(:points AS bigint[]),
                             CAST(:addresses AS text[]), CAST(:verdicts AS text[]),
                             CAST(:triggers AS text[]), CAST(:details AS text[]),
                             CAST(:outcomes AS text[]))
            AS v(action_id, debtor_id, channel, integration_id, template_id,
                 contact_point_id, address, verdict, trigger_, detail, outcome)
    ), made AS (
        INSERT INTO interactions (tenant_id, debtor_id, direction, channel, status,
            integration_id, template_id, contact_point_id, address, obligation_ids,
            variables, content, verdict, "trigger", action_id, not_before, attempts,
            created_at, updated_at)
        SELECT :tenant, v.debtor_id, 'outbound', v.channel, 'queued', v.integration_id,
            v.template_id, v.contact_point_id, v.address, '[]'::jsonb, '{}'::jsonb, NULL,
            v.verdict::jsonb, v.trigger_::jsonb, v.action_id, NULL, 0, :now, :now
        FROM v
        ON CONFLICT (action_id) WHERE action_id IS NOT NULL DO NOTHING
        RETURNING id, action_id
    ), events AS (
        INSERT INTO interaction_events (tenant_id, interaction_id, status, at, occurred_at,
                                        source, detail)
        SELECT :tenant, made.id, 'queued', :now, NULL, 'strategy', v.detail::jsonb
        FROM made JOIN v ON v.action_id = made.action_id
    )
    UPDATE actions AS a SET channel = v.channel, verdict = v.verdict::jsonb,
        outcome = jsonb_set(v.outcome::jsonb, '{interaction_id}', to_jsonb(made.id)),
        updated_at = :now
    FROM made JOIN v ON v.action_id = made.action_id
    WHERE a.id = made.action_id
""")


async def _enqueue(session: AsyncSession, runner: Any, tenant_id: int,
                   sends: list[tuple[Any, dict[str, Any]]], now: datetime) -> None:
    """Insert the queued interactions and their first events, record them on the actions
    (on PostgreSQL one statement: ``INSERT ... SELECT FROM unnest(...)`` chained through
    data-modifying CTEs; an action that already has its interaction gets no second one),
    and make each integration's batch job wait."""
    if session.get_bind().dialect.name == "postgresql":
        def js(value: Any) -> str:
            return msgspec.json.encode(value).decode()

        await session.execute(_ENQUEUE, {
            "tenant": tenant_id, "now": now,
            "actions": [r.id for r, _ in sends], "debtors": [r.debtor_id for r, _ in sends],
            "channels": [x["channel"] for _, x in sends],
            "integrations": [x["integration_id"] for _, x in sends],
            "templates": [x["template_id"] for _, x in sends],
            "points": [x["cp"].id for _, x in sends],
            "addresses": [x["cp"].value for _, x in sends],
            "verdicts": [js(x["verdict"]) for _, x in sends],
            "triggers": [js(_trigger(r)) for r, _ in sends],
            "details": [js(_detail(r, x)) for r, x in sends],
            "outcomes": [js(_outcome(None, x)) for _, x in sends]})
    else:
        await _enqueue_each(session, tenant_id, sends, now)
    for integration_id in sorted({x["integration_id"] for _, x in sends}):
        await batch.ensure_batch_job(session, runner, tenant_id, integration_id)


def _trigger(r: Any) -> dict[str, Any]:
    return {"source": "strategy", "action_id": r.id, "strategy_id": r.strategy_id}


def _detail(r: Any, x: dict[str, Any]) -> dict[str, Any]:
    return {"action_id": r.id, "reasons": [c["code"] for c in x["verdict"]["reasons"]]}


def _outcome(interaction_id: int | None, x: dict[str, Any]) -> dict[str, Any]:
    return {"interaction_id": interaction_id, "channel": x["channel"],
            "integration_id": x["integration_id"], "skipped": x["verdict"].get("tried", [])}


async def _enqueue_each(session: AsyncSession, tenant_id: int,
                        sends: list[tuple[Any, dict[str, Any]]], now: datetime) -> None:
    """SQLite (one writer at a time): a multi-row INSERT each, then the actions."""
    it = table_of(Interaction)
    values = [{
        "tenant_id": tenant_id, "debtor_id": r.debtor_id, "direction": "outbound",
        "channel": x["channel"], "status": "queued", "integration_id": x["integration_id"],
        "template_id": x["template_id"], "contact_point_id": x["cp"].id,
        "address": x["cp"].value, "obligation_ids": [], "variables": {}, "content": None,
        "verdict": x["verdict"], "not_before": None, "created_at": now, "updated_at": now,
        "trigger": _trigger(r), "action_id": r.id}
        for r, x in sends]
    ids = (await session.execute(insert(it).returning(it.c.id, sort_by_parameter_order=True),
                                 values)).scalars().all()
    await session.execute(insert(table_of(InteractionEvent)), [
        {"tenant_id": tenant_id, "interaction_id": i, "status": "queued", "at": now,
         "occurred_at": None, "source": "strategy", "detail": _detail(r, x)}
        for i, (r, x) in zip(ids, sends, strict=True)])
    a = table_of(Action)
    await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
        channel=bindparam("b_channel"),
        verdict=bindparam("b_verdict", type_=a.c.verdict.type),
        outcome=bindparam("b_outcome", type_=a.c.outcome.type), updated_at=now), [
        {"b_id": r.id, "b_channel": x["channel"], "b_verdict": x["verdict"],
         "b_outcome": _outcome(i, x)} for i, (r, x) in zip(ids, sends, strict=True)])


@job(KIND)
async def dispatch_job(ctx: JobContext) -> dict[str, Any]:
    """Dispatch the tenant's due actions a batch (one transaction) at a time."""
    totals: dict[str, int] = defaultdict(int)
    while True:
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            executed = await execute_due(session, ctx.tenant_id)
        for key, n in executed.items():
            totals[f"executed_{key}"] += n
        if sum(executed.values()) < BATCH:
            break
    while True:
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            done = await dispatch_due(session, current_host(), current_runner(), ctx.tenant_id)
        for key, n in done.items():
            totals[key] += n
        if sum(done.values()) < BATCH:
            return dict(totals)


@every_minute
async def queue_due_dispatches(sessionmaker: async_sessionmaker[AsyncSession],
                               runner: Any) -> None:
    """Make sure a dispatch job waits for each tenant with due actions (keyed, so calling
    this every minute queues no duplicates)."""
    a = table_of(Action)
    now = clock.now()
    async with sessionmaker() as session:
        tenants = (await session.scalars(select(a.c.tenant_id).distinct().where(or_(
            and_(a.c.kind.in_(CONTACT_KINDS), a.c.status.in_(DISPATCHABLE),
                 a.c.verdict.is_not(None), a.c.planned_at <= now),
            and_(a.c.kind.in_(EXECUTED_KINDS), a.c.status == "planned",
                 a.c.planned_at <= now))))).all()
        for tenant_id in tenants:
            await runner.enqueue_once(session, tenant_id, KIND, {},
                                      key=f"{KIND}:{tenant_id}")
        await session.commit()
