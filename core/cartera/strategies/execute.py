"""Executing the steps that are not messages, at their planned instant, inside Cartera.

``strategies.dispatch`` (see :mod:`.dispatch`) also runs :func:`execute_due` for the due
actions of kinds :data:`EXECUTED_KINDS`, in one transaction per batch:

1. **claim**: up to :data:`BATCH` due actions, locked ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL (so two workers never take the same action; a claimed row is written once,
   by the record, but those of stage changes, marked ``dispatched`` before their debtor is
   replanned), on SQLite one ``UPDATE ... SET status = 'dispatched' ... RETURNING``;
2. **execute**, in the same transaction:

   * ``task``: one multi-row ``INSERT`` into ``tasks`` (queue, priority, due ``due_hours``
     after the planned instant), ``ON CONFLICT (action_id) DO NOTHING``: one task per
     action whatever happens;
   * ``stage_change``: the debtor's stage is set through segmentation's placement writer
     (:func:`cartera.segmentation.stages.set_manual`: the debtor lock, the placement
     history, the audit entry and the ``debtor.stage_changed`` event), one debtor at a
     time (a rare step);
   * ``webhook``: one ``action.requested`` outbound event per action (the ISV performs
     it: a call, a letter, an agency placement), written in one ``INSERT``;

3. **record**: the actions become ``done`` with their outcome (task id, stage, event id),
   and one audit entry per action (``strategy.action_executed``) is written in one
   ``INSERT``.

Claim, effect and record commit together: an action's effect happens at most once, and a
crash before the commit leaves the action ``planned`` for the next run (at least once).
``wait`` steps are ``done`` when planned (nothing to do).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, insert, not_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor
from cartera.audit.models import AuditEntry
from cartera.db.base import table_of
from cartera.events.models import OutboxEvent
from cartera.events.outbox import new_event_id
from cartera.segmentation import schemas as seg_schemas
from cartera.segmentation import stages
from cartera.strategies.models import Action, Enrollment, StrategyVersion, Task

EXECUTED_KINDS = ("task", "stage_change", "webhook")
"""Step kinds Cartera performs itself at dispatch."""
BATCH = 1000
REQUESTED_EVENT = "action.requested"
"""The outbound event type of a ``webhook`` step (its ``event`` is in ``data.event``)."""


def due_steps(tenant_id: int, now: datetime,
              kinds: Sequence[str] = EXECUTED_KINDS) -> Any:
    """The due, unclaimed actions to execute (not those of paused enrollments)."""
    a, e = table_of(Action), table_of(Enrollment)
    paused = exists().where(e.c.id == a.c.enrollment_id, e.c.status == "paused")
    return select(a.c.id).where(
        a.c.tenant_id == tenant_id, a.c.kind.in_(list(kinds)), a.c.status == "planned",
        a.c.planned_at <= now, not_(paused))


async def claim_steps(session: AsyncSession, tenant_id: int, now: datetime,
                      limit: int, kinds: Sequence[str] = EXECUTED_KINDS) -> list[Any]:
    """Take up to ``limit`` due actions of ``kinds`` until the transaction ends: on
    PostgreSQL locked ``FOR UPDATE SKIP LOCKED`` and not written (the batch's record sets
    each one's status once, :func:`execute_due`), on SQLite marked ``dispatched`` at once
    (the write takes the database's write lock)."""
    a = table_of(Action)
    due = due_steps(tenant_id, now, kinds).order_by(a.c.planned_at, a.c.id).limit(limit)
    columns = (a.c.id, a.c.debtor_id, a.c.enrollment_id, a.c.version_id, a.c.step_index,
               a.c.step_key, a.c.strategy_id, a.c.kind, a.c.due_on, a.c.planned_at)
    if session.get_bind().dialect.name == "postgresql":
        result = await session.execute(due.with_only_columns(*columns).with_for_update(
            of=a, skip_locked=True))
    else:
        result = await session.execute(update(a).where(
            a.c.id.in_(due.scalar_subquery()), a.c.status == "planned")
            .values(status="dispatched", updated_at=now).returning(*columns))
    return sorted(result.all(), key=lambda r: r.id)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def _tasks(session: AsyncSession, tenant_id: int, rows: list[tuple[Any, dict[str, Any]]],
                 now: datetime) -> dict[int, int]:
    """Insert one task per action (none twice); action id → task id."""
    if not rows:
        return {}
    t = table_of(Task)
    values = [{"tenant_id": tenant_id, "debtor_id": r.debtor_id, "action_id": r.id,
               "strategy_id": r.strategy_id, "queue": step["task"]["queue"],
               "priority": step["task"].get("priority", 50),
               "due_at": r.planned_at + timedelta(hours=step["task"].get("due_hours", 24)),
               "status": "open", "note": None, "created_at": now, "updated_at": now}
              for r, step in rows]
    found: dict[int, int] = {}
    for i in range(0, len(values), TASK_CHUNK):  # a statement takes at most 65,535 values
        part = values[i:i + TASK_CHUNK]
        await session.execute(_insert(session, t).values(part).on_conflict_do_nothing(
            index_elements=["action_id"]))
        for action_id, task_id in (await session.execute(select(t.c.action_id, t.c.id).where(
                t.c.action_id.in_([v["action_id"] for v in part])))).all():
            found[int(action_id)] = int(task_id)
    return found


TASK_CHUNK = 2000


async def _webhooks(session: AsyncSession, tenant_id: int,
                    rows: list[tuple[Any, dict[str, Any]]], now: datetime) -> dict[int, str]:
    """One ``action.requested`` event per action; action id → event id."""
    if not rows:
        return {}
    ids = {r.id: new_event_id() for r, _ in rows}
    await session.execute(insert(table_of(OutboxEvent)), [{
        "id": ids[r.id], "tenant_id": tenant_id, "type": REQUESTED_EVENT, "created_at": now,
        "resource_type": "action", "resource_id": str(r.id), "debtor_id": r.debtor_id,
        "data": {"event": step["event"], "action_id": r.id, "strategy_id": r.strategy_id,
                 "step_key": r.step_key, "debtor_id": r.debtor_id,
                 "due_on": r.due_on.isoformat()},
        "dispatched": False} for r, step in rows])
    return ids


async def _stage_changes(session: AsyncSession, tenant_id: int,
                         rows: list[tuple[Any, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """Each debtor's stage set through the placement writer; action id → outcome."""
    actor = Actor(tenant_id=tenant_id, client_id=None, request_id=None)
    done: dict[int, dict[str, Any]] = {}
    for r, step in rows:
        reason = f"strategy {r.strategy_id} step {r.step_key} (action {r.id})"
        out = await stages.set_manual(session, actor, r.debtor_id, seg_schemas.StageSet(
            stage_code=step["stage_code"], reason=reason), r.due_on)
        done[r.id] = {"stage_code": out.stage}
    return done


async def execute_due(session: AsyncSession, tenant_id: int, now: datetime | None = None,
                      limit: int = BATCH,
                      kinds: Sequence[str] = EXECUTED_KINDS) -> dict[str, int]:
    """One batch of due task, stage change and webhook actions (those of ``kinds``), in
    the caller's transaction; counts per kind."""
    now = now or clock.now()
    rows = await claim_steps(session, tenant_id, now, limit, kinds)
    if not rows:
        return {}
    steps = {v.id: v.steps for v in (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.id.in_({r.version_id for r in rows})))).all()}
    by_kind: dict[str, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
    for r in rows:
        by_kind[r.kind].append((r, steps[r.version_id][r.step_index]))
    tasks = await _tasks(session, tenant_id, by_kind["task"], now)
    events = await _webhooks(session, tenant_id, by_kind["webhook"], now)
    if by_kind["stage_change"] and session.get_bind().dialect.name == "postgresql":
        # The stage change replans its debtor in this transaction: the action being
        # executed is no longer a planned one by then (a rare step: its own write).
        a = table_of(Action)
        await session.execute(update(a).where(a.c.id.in_(
            [r.id for r, _ in by_kind["stage_change"]])).values(
            status="dispatched", updated_at=now))
    moved = await _stage_changes(session, tenant_id, by_kind["stage_change"])
    outcomes: dict[int, dict[str, Any]] = {}
    for action_id, task_id in tasks.items():
        outcomes[action_id] = {"task_id": task_id}
    for action_id, event_id in events.items():
        outcomes[action_id] = {"event_id": event_id, "event_type": REQUESTED_EVENT}
    outcomes.update(moved)
    a = table_of(Action)
    await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
        status="done", outcome=bindparam("b_outcome", type_=a.c.outcome.type),
        updated_at=now), [{"b_id": r.id, "b_outcome": {"kind": r.kind,
                                                       **outcomes.get(r.id, {})}}
                          for r in rows])
    await session.execute(insert(table_of(AuditEntry)), [{
        "tenant_id": tenant_id, "at": now, "actor": "system", "client_id": None,
        "request_id": None, "action": "strategy.action_executed", "resource_type": "debtor",
        "resource_id": str(r.debtor_id),
        "changes": {"action_id": r.id, "kind": r.kind, "strategy_id": r.strategy_id,
                    "step_key": r.step_key, **outcomes.get(r.id, {})}} for r in rows])
    return {kind: len(found) for kind, found in by_kind.items() if found}
