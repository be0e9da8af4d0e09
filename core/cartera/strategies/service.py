"""Strategy use cases: create and version strategies, activate and retire versions, pause,
resume and stop enrollments.

Every function works inside the caller's tenant-scoped session and audits its writes
there. Validation names the offending field as ``param`` (``steps[2].channels[0].
template_id``). Activation and the planner take the same per-tenant lock
(:func:`lock_tenant`), so a version activated while the planner runs is seen by it either
entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from cartera_sdk.money import Price
from sqlalchemy import case, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.db.base import table_of
from cartera.errors import Conflict, Invalid, NotFound
from cartera.messaging.models import MessageTemplate
from cartera.plugins.host import PluginHost
from cartera.plugins.registry import current_host
from cartera.portfolio.service import _flush_unique, tenant_today
from cartera.segmentation import rules
from cartera.segmentation.models import Segment, Stage
from cartera.strategies import lawful, paylinks, schemas
from cartera.strategies.models import (
    Action,
    Enrollment,
    PlannerSettings,
    Strategy,
    StrategyVersion,
    Task,
)

_LOCK_SPACE = 0x57A7  # first key of the two-key advisory lock: "strategies"
LIVE = ("active", "paused")
DEFAULT_PLAN_HOUR = 6


async def lock_tenant(session: AsyncSession, tenant_id: int, *, shared: bool = False) -> None:
    """Until the transaction ends, on PostgreSQL: activations and planner passes of the
    tenant exclude each other (SQLite has one writer at a time already). ``shared``: a
    replanning of a few debtors (:mod:`cartera.strategies.replan`), which runs beside the
    others of the tenant but never during an activation or a whole-portfolio pass."""
    if session.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await session.execute(text(f"SELECT {fn}(:space, :tenant)"),
                              {"space": _LOCK_SPACE, "tenant": tenant_id})


# --- validation ---------------------------------------------------------------------------

def _fail(message: str, code: str, param: str) -> Invalid:
    return Invalid(message, code=code, param=param)


async def validate_version(session: AsyncSession, tenant_id: int,
                           data: schemas.VersionIn) -> None:
    """Every reference and rule of a version, checked against the tenant's data; the first
    fault raises 422 naming its path."""
    segments = set((await session.scalars(select(Segment.id).where(
        Segment.tenant_id == tenant_id, Segment.active))).all())
    for i, sid in enumerate(data.segment_ids):
        if sid not in segments:
            raise _fail(f"segment {sid} does not exist or is retired", "unknown_segment",
                        f"segment_ids[{i}]")
    stages = {s.id: s.code for s in (await session.scalars(select(Stage).where(
        Stage.tenant_id == tenant_id, Stage.active))).all()}
    for i, stage_id in enumerate(data.stage_ids):
        if stage_id not in stages:
            raise _fail(f"stage {stage_id} does not exist or is retired", "unknown_stage",
                        f"stage_ids[{i}]")
    for name in ("entry_rule", "stop_rule"):
        raw = getattr(data, name)
        if raw is not None:
            rules.parse_rule(raw, name)
    ids = {c.template_id for s in data.steps for c in s.channels}
    templates = {t.id: t.channel for t in (await session.scalars(select(MessageTemplate).where(
        MessageTemplate.tenant_id == tenant_id, MessageTemplate.id.in_(ids)))).all()} if ids \
        else {}
    seen: set[str] = set()
    for i, step in enumerate(data.steps):
        _validate_step(step, f"steps[{i}]", i, seen, templates, set(stages.values()))
        if (i and step.kind == "message" and step.anchor == "previous_step"
                and step.offset_days == 0 and data.steps[i - 1].kind == "message"):
            raise _fail("a message step 0 days after a previous message would contact the "
                        "debtor twice the same day (one contact a day): give it an offset "
                        "of 1 or more", "zero_offset", f"steps[{i}].offset_days")


def _validate_step(step: schemas.StepIn, path: str, index: int, seen: set[str],
                   templates: dict[int, str], stage_codes: set[str]) -> None:
    if step.key in seen:
        raise _fail(f"step key {step.key!r} is used twice", "duplicate_step_key", f"{path}.key")
    seen.add(step.key)
    if step.offset_days < 0 and step.anchor not in schemas.DATE_ANCHORS:
        raise _fail(f"only the anchors {', '.join(schemas.DATE_ANCHORS)} take a negative "
                    "offset (a reminder before the date)", "negative_offset",
                    f"{path}.offset_days")
    if (step.anchor == "obligation_due_date") != (step.obligation_product is not None):
        raise _fail("an obligation_due_date anchor names its obligation_product, and only "
                    "it does", "obligation_product_required" if step.obligation_product is None
                    else "obligation_product_unused", f"{path}.obligation_product")
    w = step.window
    if w.start_hour >= w.end_hour:
        raise _fail("the window never opens: start_hour must be before end_hour",
                    "empty_window", f"{path}.window.start_hour")
    if len(set(w.weekdays)) != len(w.weekdays):
        raise _fail("a weekday is listed twice", "duplicate_weekday", f"{path}.window.weekdays")
    _validate_action(step, path, templates, stage_codes)


def _validate_action(step: schemas.StepIn, path: str, templates: dict[int, str],
                     stage_codes: set[str]) -> None:
    extra = {"message": ("task", "stage_code", "event"),
             "task": ("stage_code", "event", "payment_link"),
             "stage_change": ("task", "event", "payment_link"),
             "webhook": ("task", "stage_code", "payment_link"),
             "wait": ("task", "stage_code", "event", "payment_link")}[step.kind]
    for name in extra:
        if getattr(step, name) is not None:
            raise _fail(f"a {step.kind} step takes no {name}", "unexpected_field",
                        f"{path}.{name}")
    if step.kind != "message" and step.channels:
        raise _fail(f"a {step.kind} step takes no channels", "unexpected_field",
                    f"{path}.channels")
    if step.kind == "message":
        if not step.channels:
            raise _fail("a message step needs at least one channel", "missing_channels",
                        f"{path}.channels")
        used: set[str] = set()
        for j, ch in enumerate(step.channels):
            cpath = f"{path}.channels[{j}]"
            if ch.channel in used:
                raise _fail(f"{ch.channel} is listed twice", "duplicate_channel",
                            f"{cpath}.channel")
            used.add(ch.channel)
            found = templates.get(ch.template_id)
            if found is None:
                raise _fail(f"template {ch.template_id} does not exist", "unknown_template",
                            f"{cpath}.template_id")
            if found != ch.channel:
                raise _fail(f"template {ch.template_id} is for {found}, not {ch.channel}",
                            "template_channel_mismatch", f"{cpath}.template_id")
            if ch.fallback_after_hours is not None and j == len(step.channels) - 1:
                raise _fail("the last channel has no next channel to fall back to",
                            "no_fallback_channel", f"{cpath}.fallback_after_hours")
    elif step.kind == "task" and step.task is None:
        raise _fail("a task step needs a task (queue, priority, due_hours)", "missing_task",
                    f"{path}.task")
    elif step.kind == "stage_change":
        if step.stage_code is None:
            raise _fail("a stage_change step needs a stage_code", "missing_stage",
                        f"{path}.stage_code")
        if step.stage_code not in stage_codes:
            raise _fail(f"stage {step.stage_code!r} does not exist", "unknown_stage",
                        f"{path}.stage_code")
    elif step.kind == "webhook" and not step.event:
        raise _fail("a webhook step needs an event type", "missing_event", f"{path}.event")


def _version_row(tenant_id: int, strategy_id: int, number: int,
                 data: schemas.VersionIn) -> StrategyVersion:
    return StrategyVersion(
        tenant_id=tenant_id, strategy_id=strategy_id, number=number, status="draft",
        segment_ids=list(data.segment_ids), stage_ids=list(data.stage_ids),
        entry_rule=data.entry_rule, stop_rule=data.stop_rule,
        steps=[msgspec.to_builtins(s) for s in data.steps])


# --- strategies and versions --------------------------------------------------------------

async def create(session: AsyncSession, actor: Actor,
                 data: schemas.StrategyCreate) -> Strategy:
    await validate_version(session, actor.tenant_id, data.version)
    strategy = Strategy(tenant_id=actor.tenant_id, code=data.code, name=data.name,
                        priority=data.priority)
    session.add(strategy)
    await _flush_unique(session, f"a strategy {data.code!r} exists", "code")
    session.add(_version_row(actor.tenant_id, strategy.id, 1, data.version))
    await session.flush()
    audit.record(session, actor, "strategy.created", "strategy", strategy.id,
                 {"code": data.code, "priority": data.priority})
    return strategy


async def get(session: AsyncSession, strategy_id: int) -> Strategy:
    return await get_owned(session, Strategy, strategy_id, session.info["tenant_id"],
                           what="strategy")


async def update_strategy(session: AsyncSession, actor: Actor, strategy_id: int,
                          data: schemas.StrategyUpdate) -> Strategy:
    strategy = await get(session, strategy_id)
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    for key, value in changes.items():
        setattr(strategy, key, value)
    await session.flush()
    audit.record(session, actor, "strategy.updated", "strategy", strategy.id, changes)
    return strategy


async def get_version(session: AsyncSession, strategy_id: int, number: int,
                      *, lock: bool = False) -> StrategyVersion:
    await get(session, strategy_id)
    stmt = select(StrategyVersion).where(StrategyVersion.strategy_id == strategy_id,
                                         StrategyVersion.number == number)
    row = (await session.scalars(stmt.with_for_update() if lock else stmt)).first()
    if row is None:
        raise NotFound(f"version {number} of strategy {strategy_id} not found")
    return row


async def add_version(session: AsyncSession, actor: Actor, strategy_id: int,
                      data: schemas.VersionIn) -> StrategyVersion:
    """A new draft, numbered after the latest version."""
    strategy = await get(session, strategy_id)
    await validate_version(session, actor.tenant_id, data)
    await session.refresh(strategy, with_for_update=True)  # serialises version numbers
    latest = await session.scalar(select(func.max(StrategyVersion.number)).where(
        StrategyVersion.strategy_id == strategy_id))
    version = _version_row(actor.tenant_id, strategy_id, int(latest or 0) + 1, data)
    session.add(version)
    await session.flush()
    audit.record(session, actor, "strategy.version_created", "strategy", strategy_id,
                 {"version": version.number})
    return version


async def replace_draft(session: AsyncSession, actor: Actor, strategy_id: int, number: int,
                        data: schemas.VersionIn) -> StrategyVersion:
    """Replace a draft's content (409 ``version_not_draft``: active versions are
    immutable, retired ones history)."""
    version = await get_version(session, strategy_id, number, lock=True)
    if version.status != "draft":
        raise Conflict(f"version {number} is {version.status}; only drafts change",
                       code="version_not_draft")
    await validate_version(session, actor.tenant_id, data)
    fresh = _version_row(actor.tenant_id, strategy_id, number, data)
    for name in ("segment_ids", "stage_ids", "entry_rule", "stop_rule", "steps"):
        setattr(version, name, getattr(fresh, name))
    await session.flush()
    audit.record(session, actor, "strategy.version_updated", "strategy", strategy_id,
                 {"version": number})
    return version


def _steps(version: StrategyVersion) -> list[schemas.StepIn]:
    return [msgspec.convert(s, schemas.StepIn) for s in version.steps]


async def activate(session: AsyncSession, actor: Actor, strategy_id: int, number: int,
                   data: schemas.Activate, host: PluginHost | None = None) -> StrategyVersion:
    """Make a draft the strategy's active version; the previous active version is retired
    and its live enrollments follow ``data.in_flight``. The version is validated again
    (templates or segments may have gone since it was saved), and each message step's
    window must open lawfully for the tenant's debtors (:mod:`.lawful`)."""
    await lock_tenant(session, actor.tenant_id)
    version = await get_version(session, strategy_id, number, lock=True)
    if version.status != "draft":
        raise Conflict(f"version {number} is {version.status}; only a draft is activated",
                       code="version_not_draft")
    steps = _steps(version)
    await validate_version(session, actor.tenant_id, schemas.VersionIn(
        segment_ids=version.segment_ids, stage_ids=version.stage_ids, steps=steps,
        entry_rule=version.entry_rule, stop_rule=version.stop_rule))
    await paylinks.check_activation(session, steps)
    now = clock.now()
    closed = await lawful.never_lawful(session, host or current_host(), actor.tenant_id,
                                       steps, now)
    if closed is not None:
        index, country, codes = closed
        raise _fail(f"the window of steps[{index}] never opens lawfully for debtors in "
                    f"{country} in the next {lawful.PROBE_DAYS} days (the compliance packs "
                    f"answer: {', '.join(codes) or 'no allowed instant'})",
                    "window_never_lawful", f"steps[{index}].window")
    previous = (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.strategy_id == strategy_id, StrategyVersion.status == "active")
        .with_for_update())).first()
    moved = 0
    if previous is not None:
        previous.status, previous.retired_at = "retired", now
        await session.flush()
        if data.in_flight != "finish":
            moved = await _move_in_flight(session, actor.tenant_id, previous, version,
                                          data.in_flight)
    version.status, version.activated_at, version.in_flight = "active", now, data.in_flight
    await session.flush()
    audit.record(session, actor, "strategy.version_activated", "strategy", strategy_id,
                 {"version": number, "in_flight": data.in_flight, "moved": moved})
    return version


async def _move_in_flight(session: AsyncSession, tenant_id: int, old: StrategyVersion,
                          new: StrategyVersion, policy: str) -> int:
    """Move the old version's live enrollments onto ``new`` in one UPDATE (``same_key``:
    to the step with the same key, the first when it is gone; ``restart``: from the first
    step, as if enrolled today), and cancel their planned actions not yet dispatched."""
    today = await tenant_today(session, tenant_id)
    e = table_of(Enrollment)
    values: dict[str, Any] = {"version_id": new.id, "updated_at": clock.now()}
    if policy == "restart":
        values |= {"step_index": 0, "entered_on": today, "last_step_on": None,
                   "reason": "restarted on a new version"}
    else:
        new_index = {s["key"]: i for i, s in enumerate(new.steps)}
        whens = [(e.c.step_index == i, new_index.get(s["key"], 0))
                 for i, s in enumerate(old.steps)]
        values |= {"step_index": case(*whens, else_=0) if whens else 0,
                   "reason": "moved to the same step key of a new version"}
    ids = select(e.c.id).where(e.c.tenant_id == tenant_id, e.c.version_id == old.id,
                               e.c.status.in_(LIVE))
    a = table_of(Action)
    # By (debtor, enrollment): the actions' unique index leads with the debtor (0050).
    await session.execute(update(a).where(
        a.c.tenant_id == tenant_id,
        tuple_(a.c.debtor_id, a.c.enrollment_id).in_(ids.with_only_columns(
            e.c.debtor_id, e.c.id)),
        a.c.status.in_(("planned", "deferred"))).values(status="cancelled",
                                                          updated_at=clock.now()))
    result = await session.execute(update(e).where(e.c.id.in_(ids.scalar_subquery()))
                                   .values(values))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def retire(session: AsyncSession, actor: Actor, strategy_id: int,
                 number: int) -> StrategyVersion:
    """Retire a version: nobody new is enrolled in it; its live enrollments finish on it."""
    await lock_tenant(session, actor.tenant_id)
    version = await get_version(session, strategy_id, number, lock=True)
    if version.status == "retired":
        raise Conflict(f"version {number} is already retired", code="version_retired")
    version.status, version.retired_at = "retired", clock.now()
    await session.flush()
    audit.record(session, actor, "strategy.version_retired", "strategy", strategy_id,
                 {"version": number})
    return version


async def versions_of(session: AsyncSession,
                      ids: Sequence[int]) -> dict[int, list[StrategyVersion]]:
    found: dict[int, list[StrategyVersion]] = {i: [] for i in ids}
    if ids:
        for v in await session.scalars(select(StrategyVersion).where(
                StrategyVersion.strategy_id.in_(ids)).order_by(StrategyVersion.number)):
            found[v.strategy_id].append(v)
    return found


def version_out(v: StrategyVersion) -> schemas.VersionOut:
    return schemas.VersionOut(
        id=v.id, number=v.number, status=v.status,  # type: ignore[arg-type]
        segment_ids=list(v.segment_ids), stage_ids=list(v.stage_ids), entry_rule=v.entry_rule,
        stop_rule=v.stop_rule, steps=[msgspec.convert(s, schemas.StepOut) for s in v.steps],
        in_flight=v.in_flight, created_at=v.created_at, activated_at=v.activated_at,
        retired_at=v.retired_at)


async def strategies_out(session: AsyncSession,
                         rows: Sequence[Strategy]) -> list[schemas.StrategyOut]:
    versions = await versions_of(session, [s.id for s in rows])
    return [schemas.StrategyOut(
        id=s.id, code=s.code, name=s.name, priority=s.priority,
        active_version=next((v.number for v in versions[s.id] if v.status == "active"), None),
        versions=[version_out(v) for v in versions[s.id]], created_at=s.created_at,
        updated_at=s.updated_at) for s in rows]


# --- enrollments --------------------------------------------------------------------------

async def get_enrollment(session: AsyncSession, enrollment_id: int,
                         *, lock: bool = False) -> Enrollment:
    return await get_owned(session, Enrollment, enrollment_id, session.info["tenant_id"],
                           what="enrollment", with_for_update=lock or None,
                           populate_existing=lock)


async def change_enrollment(session: AsyncSession, actor: Actor, enrollment_id: int,
                            to: str, reason: str | None) -> Enrollment:
    """Pause (from active), resume (from paused) or stop (from either) an enrollment; 409
    ``enrollment_not_<from>`` otherwise. Stopping cancels its actions not yet dispatched;
    pausing keeps them out of dispatch until resumed."""
    allowed = {"paused": ("active",), "active": ("paused",), "stopped": LIVE}[to]
    row = await get_enrollment(session, enrollment_id, lock=True)
    if row.status not in allowed:
        raise Conflict(f"the enrollment is {row.status}", code=f"enrollment_not_{allowed[0]}")
    row.status = to
    row.reason = reason or {"paused": "paused by hand", "active": "resumed by hand",
                            "stopped": "stopped by hand"}[to]
    if to == "stopped":
        row.ended_at = clock.now()
        a = table_of(Action)
        await session.execute(update(a).where(
            a.c.debtor_id == row.debtor_id, a.c.enrollment_id == row.id,
            a.c.status.in_(("planned", "deferred")))
            .values(status="cancelled", updated_at=clock.now()))
    await session.flush()
    verb = {"paused": "paused", "active": "resumed", "stopped": "stopped"}[to]
    audit.record(session, actor, f"enrollment.{verb}", "debtor", row.debtor_id,
                 {"enrollment_id": row.id, "reason": row.reason})
    return row


async def enrollments_out(session: AsyncSession,
                          rows: Sequence[Enrollment]) -> list[schemas.EnrollmentOut]:
    ids = {r.version_id for r in rows}
    steps = {v.id: v.steps for v in (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.id.in_(ids)))).all()} if ids else {}

    def key(r: Enrollment) -> str | None:
        s = steps.get(r.version_id, [])
        return str(s[r.step_index]["key"]) if r.step_index < len(s) else None

    return [schemas.EnrollmentOut(
        id=r.id, debtor_id=r.debtor_id, strategy_id=r.strategy_id, version_id=r.version_id,
        step_index=r.step_index, step_key=key(r), status=r.status,  # type: ignore[arg-type]
        reason=r.reason, entered_on=r.entered_on, last_step_on=r.last_step_on,
        created_at=r.created_at, updated_at=r.updated_at, ended_at=r.ended_at) for r in rows]


def action_out(a: Action) -> schemas.ActionOut:
    return schemas.ActionOut(
        id=a.id, debtor_id=a.debtor_id, enrollment_id=a.enrollment_id,
        strategy_id=a.strategy_id, version_id=a.version_id, step_index=a.step_index,
        step_key=a.step_key, kind=a.kind, channel=a.channel, anchor_on=a.anchor_on,
        due_on=a.due_on, planned_at=a.planned_at, status=a.status,  # type: ignore[arg-type]
        superseded_by=a.superseded_by, verdict=a.verdict, outcome=a.outcome,
        created_at=a.created_at, updated_at=a.updated_at, attempt=a.attempt,
        fallback_of=a.fallback_of)


# --- planner settings ---------------------------------------------------------------------

async def planner_settings(session: AsyncSession, tenant_id: int) -> schemas.PlannerSettingsOut:
    row = await session.get(PlannerSettings, tenant_id)
    if row is None:
        return schemas.PlannerSettingsOut(plan_hour=DEFAULT_PLAN_HOUR, last_planned_on=None)
    prices = ({k: msgspec.convert(v, schemas.PriceIn) for k, v in row.channel_prices.items()}
              if row.channel_prices else None)
    return schemas.PlannerSettingsOut(plan_hour=row.plan_hour,
                                      last_planned_on=row.last_planned_on,
                                      min_gap_hours=row.min_gap_hours,
                                      weekly_cap=row.weekly_cap, channel_prices=prices)


def _check_prices(prices: Mapping[Any, schemas.PriceIn] | None) -> dict[str, Any] | None:
    """The price hints as the SDK's ``Price`` keeps them (422 naming the channel)."""
    if prices is None:
        return None
    found: dict[str, Any] = {}
    for channel, p in prices.items():
        try:
            price = Price.of(p.amount, p.currency)
        except ValueError as exc:
            raise _fail(str(exc), "invalid_price", f"channel_prices.{channel}.amount") from exc
        found[channel] = {"amount": str(price.amount), "currency": price.currency}
    return found


async def set_planner_settings(session: AsyncSession, actor: Actor,
                               data: schemas.PlannerSettingsIn) -> schemas.PlannerSettingsOut:
    prices = _check_prices(data.channel_prices)
    row = await session.get(PlannerSettings, actor.tenant_id, with_for_update=True)
    if row is None:
        row = PlannerSettings(tenant_id=actor.tenant_id, plan_hour=data.plan_hour)
        session.add(row)
    row.plan_hour = data.plan_hour
    row.min_gap_hours, row.weekly_cap = data.min_gap_hours, data.weekly_cap
    row.channel_prices = prices
    await session.flush()
    audit.record(session, actor, "strategy.settings_updated", "tenant", actor.tenant_id,
                 {"plan_hour": data.plan_hour, "min_gap_hours": data.min_gap_hours,
                  "weekly_cap": data.weekly_cap, "channel_prices": prices})
    return await planner_settings(session, actor.tenant_id)


# --- tasks --------------------------------------------------------------------------------

def task_out(t: Task) -> schemas.TaskOut:
    return schemas.TaskOut(
        id=t.id, debtor_id=t.debtor_id, queue=t.queue, priority=t.priority, due_at=t.due_at,
        status=t.status, action_id=t.action_id,  # type: ignore[arg-type]
        strategy_id=t.strategy_id, note=t.note, created_at=t.created_at,
        updated_at=t.updated_at, closed_at=t.closed_at)


async def get_task(session: AsyncSession, task_id: int, *, lock: bool = False) -> Task:
    return await get_owned(session, Task, task_id, session.info["tenant_id"], what="task",
                           with_for_update=lock or None, populate_existing=lock)


async def close_task(session: AsyncSession, actor: Actor, task_id: int, to: str,
                     note: str | None) -> Task:
    """Complete (``done``) or cancel an open task; 409 ``task_not_open`` otherwise."""
    row = await get_task(session, task_id, lock=True)
    if row.status != "open":
        raise Conflict(f"the task is {row.status}", code="task_not_open")
    now = clock.now()
    row.status, row.note, row.closed_at = to, note, now
    await session.flush()
    audit.record(session, actor, "task.completed" if to == "done" else "task.cancelled",
                 "debtor", row.debtor_id, {"task_id": row.id, "queue": row.queue,
                                           "note": note})
    return row
