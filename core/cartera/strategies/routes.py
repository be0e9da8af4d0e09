"""HTTP routes: /v1/strategies, /v1/enrollments, /v1/actions and a debtor's next action."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, app_context
from cartera.api.etag import (
    IfMatch,
    check_content,
    claim,
    tagged,
    with_content_etag,
    with_etag,
)
from cartera.api.location import LOCATION
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.db import get_owned
from cartera.errors import Conflict, Invalid, NotFound
from cartera.jobs.models import Job
from cartera.jobs.routes import job_out
from cartera.jobs.schemas import JobOut
from cartera.plugins.registry import current_host
from cartera.strategies import explain, schemas, service
from cartera.strategies import simulate as simulation
from cartera.strategies.jobs import queue_plan
from cartera.strategies.models import (
    Action,
    Enrollment,
    PlannerSettings,
    Strategy,
    StrategyVersion,
    Task,
)

READ = secured("strategies:read")
WRITE = secured("strategies:write")
Number = Id


def _equal(stmt: Select[Any], *filters: tuple[Any, Any]) -> Select[Any]:
    """``stmt`` where each column equals its value, for the values given (not None)."""
    for column, value in filters:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


class StrategyController(Controller):
    path = "/v1/strategies"
    tags = ["Strategies"]

    @post("/", summary="Create a strategy", operation_id="CreateStrategy", **WRITE)
    async def create(self, data: schemas.StrategyCreate, session: AsyncSession,
                     actor: Actor) -> schemas.StrategyOut:
        """A strategy with its version 1 as a draft: the segments (and optionally stages)
        whose debtors it enrolls, entry and stop rules in the segment rule language, and
        its steps. Every reference is checked: an unknown segment, stage or template, a
        template of another channel, a window that never opens answer 422 naming the path
        (``steps[2].channels[0].template_id``). Activate the version to start enrolling."""
        strategy = await service.create(session, actor, data)
        return (await service.strategies_out(session, [strategy]))[0]

    @get("/", summary="List strategies", operation_id="ListStrategies", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None) -> Page[schemas.StrategyOut]:
        """Strategies in id order, with their versions."""
        rows = (await session.scalars(paginate(select(Strategy), Strategy.id, limit,
                                               starting_after))).all()
        page = page_of(rows, limit, lambda s: s)
        page.data = await service.strategies_out(session, page.data)
        return page

    @get("/{strategy_id:int}", summary="Get a strategy", operation_id="GetStrategy", **READ)
    async def retrieve(self, strategy_id: Id,
                       session: AsyncSession) -> Response[schemas.StrategyOut]:
        """One strategy with its versions (with its `ETag`)."""
        strategy = await service.get(session, strategy_id)
        stamp = strategy.updated_at
        return with_etag((await service.strategies_out(session, [strategy]))[0], stamp)

    @patch("/{strategy_id:int}", summary="Rename or reprioritise a strategy",
           operation_id="UpdateStrategy", **WRITE)
    async def update(self, strategy_id: Id, data: schemas.StrategyUpdate,
                     session: AsyncSession, actor: Actor,
                     if_match: IfMatch = None) -> Response[schemas.StrategyOut]:
        """Change the name or the priority (lower wins a debtor's one contact of the day).
        `If-Match`: only if unchanged since read, else 412."""
        await claim(session, Strategy, if_match, Strategy.id == strategy_id)
        strategy = await service.update_strategy(session, actor, strategy_id, data)
        out = (await service.strategies_out(session, [strategy]))[0]
        return await tagged(session, Strategy, out, Strategy.id == strategy_id)

    @post("/{strategy_id:int}/versions", summary="Create a draft version",
          operation_id="CreateStrategyVersion", opt={LOCATION: "{path}/{number}"}, **WRITE)
    async def add_version(self, strategy_id: Id, data: schemas.VersionIn,
                          session: AsyncSession, actor: Actor) -> Response[schemas.VersionOut]:
        """A new draft numbered after the latest version, validated like a new strategy
        (its `ETag` is for `If-Match` on the draft's replacement)."""
        version = await service.add_version(session, actor, strategy_id, data)
        return with_etag(service.version_out(version), version.updated_at, 201)

    @put("/{strategy_id:int}/versions/{number:int}", summary="Replace a draft version",
         operation_id="ReplaceStrategyVersion", **WRITE)
    async def replace(self, strategy_id: Id, number: Number, data: schemas.VersionIn,
                      session: AsyncSession, actor: Actor,
                      if_match: IfMatch = None) -> Response[schemas.VersionOut]:
        """Replace a draft's content; an active version is immutable and a retired one
        history (409 ``version_not_draft``). `If-Match`: the `ETag` of the draft's last
        write (its creation or replacement), else 412."""
        this = (StrategyVersion.strategy_id == strategy_id, StrategyVersion.number == number)
        await claim(session, StrategyVersion, if_match, *this)
        out = service.version_out(await service.replace_draft(session, actor, strategy_id,
                                                              number, data))
        return await tagged(session, StrategyVersion, out, *this)

    @post("/{strategy_id:int}/versions/{number:int}/activate",
          summary="Activate a draft version", operation_id="ActivateStrategyVersion",
          status_code=200, **WRITE)
    async def activate(self, strategy_id: Id, number: Number, session: AsyncSession,
                       actor: Actor, data: schemas.Activate | None = None
                       ) -> schemas.VersionOut:
        """The draft becomes the active version (validated again); the previous one is
        retired, and debtors mid-sequence on it follow ``in_flight``: ``finish`` on the old
        version, move to the step with the same key (``same_key``), or ``restart``. Waits
        for a planner pass under way, so a pass sees either version, never a mix."""
        return service.version_out(await service.activate(
            session, actor, strategy_id, number, data or schemas.Activate(), current_host()))

    @post("/{strategy_id:int}/versions/{number:int}/retire", summary="Retire a version",
          operation_id="RetireStrategyVersion", status_code=200, **WRITE)
    async def retire(self, strategy_id: Id, number: Number, session: AsyncSession,
                     actor: Actor) -> schemas.VersionOut:
        """Nobody new is enrolled in it; its live enrollments finish on it."""
        return service.version_out(await service.retire(session, actor, strategy_id, number))

    @post("/plan", summary="Plan the portfolio now", operation_id="PlanStrategies",
          status_code=202, **WRITE)
    async def plan(self, request: Request[Any, Any, Any], session: AsyncSession,
                   actor: Actor) -> JobOut:
        """Run the planner now as a job (follow it at ``/v1/jobs/{id}``): enroll, exit and
        stop debtors, plan each active enrollment's next due step as an action inside its
        window in the debtor's zone, apply the contact policy and the contact gate."""
        job_row = await queue_plan(session, app_context(request).jobs, actor.tenant_id)
        await session.flush()
        await session.refresh(job_row)
        return job_out(job_row)

    @post("/{strategy_id:int}/simulate", summary="Simulate the next days",
          operation_id="SimulateStrategy", status_code=200, **WRITE)
    async def simulate(self, strategy_id: Id, session: AsyncSession, actor: Actor,
                       data: schemas.SimulateIn | None = None) -> schemas.SimulationOut:
        """A dry run of ``days`` days (1 to 90) of the whole configuration, day by day
        (days past due grow, stages and segments move, windows and compliance packs
        apply), reporting this strategy's actions per day: per channel, and those deferred
        or denied with their reason codes. Nothing is sent and no row changes."""
        await service.get(session, strategy_id)
        return await simulation.simulate(session, current_host(), actor.tenant_id, strategy_id,
                                       (data or schemas.SimulateIn()).days)

    @post("/simulate", summary="Simulate the whole configuration",
          operation_id="SimulateStrategies", status_code=202, **WRITE)
    async def simulate_all(self, request: Request[Any, Any, Any], session: AsyncSession,
                           actor: Actor, data: schemas.SimulateIn | None = None) -> JobOut:
        """A dry run of ``days`` days (1 to 90) of every active strategy together
        (priorities and the contact policy decide who wins a debtor's day), as a job:
        follow its progress (simulated days) at ``/v1/jobs/{id}`` and read the result at
        ``/v1/strategies/simulations/{simulation_id}`` (the job's id). Per day: the
        actions that would fire per channel and strategy, those deferred, denied or
        superseded and why, and the projected cost per channel (each unit price with its
        source). Nothing is sent and
        no row of the tenant changes."""
        job_row = await simulation.queue_simulation(
            session, app_context(request).jobs, actor.tenant_id, None,
            (data or schemas.SimulateIn()).days)
        await session.flush()
        await session.refresh(job_row)
        return job_out(job_row)

    @get("/simulations/{simulation_id:int}", summary="Get a simulation's result",
         operation_id="GetStrategySimulation", **READ)
    async def simulation(self, simulation_id: Id,
                         session: AsyncSession) -> schemas.SimulationOut:
        """The result of a ``POST /v1/strategies/simulate`` job (``simulation_id`` is the
        job's id; 409 ``simulation_not_ready`` until the job succeeded, its progress is on
        the job)."""
        row = await session.get(Job, simulation_id)
        if row is None or row.tenant_id != session.info["tenant_id"] \
                or row.kind != simulation.KIND:
            raise NotFound(f"simulation {simulation_id} not found")
        if row.status != "succeeded" or row.result is None:
            raise Conflict(f"the simulation is {row.status}", code="simulation_not_ready")
        return msgspec.convert(row.result, schemas.SimulationOut)

    @get("/settings", summary="Get the planner settings",
         operation_id="GetStrategySettings", **READ)
    async def settings(self, session: AsyncSession,
                       actor: Actor) -> Response[schemas.PlannerSettingsOut]:
        """The local hour of the daily planning job and the last day it was queued (with
        its `ETag`, for `If-Match` on the `PUT`)."""
        return with_content_etag(await service.planner_settings(session, actor.tenant_id))

    @put("/settings", summary="Set the planning hour and the contact policy",
         operation_id="SetStrategySettings", **WRITE)
    async def set_settings(self, data: schemas.PlannerSettingsIn, session: AsyncSession,
                           actor: Actor, if_match: IfMatch = None,
                           ) -> Response[schemas.PlannerSettingsOut]:
        """The daily pass is queued from ``plan_hour`` of the tenant's time zone. The
        contact policy beyond one contact a day: ``min_gap_hours`` between two contacts of
        a debtor and ``weekly_cap`` contacts in any 7 days, applied by the planner and again
        at dispatch (a contact held back is deferred with the reason, never dropped).
        ``channel_prices``: price hints for simulation's projected cost. `If-Match` (the
        `ETag` of your read): only if no one changed them since, else 412."""
        if if_match is not None:
            await session.get(PlannerSettings, actor.tenant_id, with_for_update=True)
            check_content(if_match, await service.planner_settings(session, actor.tenant_id))
        return with_content_etag(await service.set_planner_settings(session, actor, data))


class EnrollmentController(Controller):
    path = "/v1/enrollments"
    tags = ["Strategies"]

    @get("/", summary="List enrollments", operation_id="ListEnrollments", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                    strategy_id: IdFilter = None,
                    status: schemas.EnrollmentStatus | None = None,
                    ) -> Page[schemas.EnrollmentOut]:
        """Enrollments in id order."""
        stmt = _equal(select(Enrollment), (Enrollment.debtor_id, debtor_id),
                      (Enrollment.strategy_id, strategy_id), (Enrollment.status, status))
        rows = (await session.scalars(paginate(stmt, Enrollment.id, limit,
                                               starting_after))).all()
        page = page_of(rows, limit, lambda e: e)
        page.data = await service.enrollments_out(session, page.data)
        return page

    async def _change(self, session: AsyncSession, actor: Actor, enrollment_id: int,
                      to: str, data: schemas.EnrollmentChange | None) -> schemas.EnrollmentOut:
        row = await service.change_enrollment(session, actor, enrollment_id, to,
                                              data.reason if data else None)
        return (await service.enrollments_out(session, [row]))[0]

    @post("/{enrollment_id:int}/pause", summary="Pause an enrollment",
          operation_id="PauseEnrollment", status_code=200, **WRITE)
    async def pause(self, enrollment_id: Id, session: AsyncSession, actor: Actor,
                    data: schemas.EnrollmentChange | None = None) -> schemas.EnrollmentOut:
        """Nothing new is planned for it until resumed (409 unless active)."""
        return await self._change(session, actor, enrollment_id, "paused", data)

    @post("/{enrollment_id:int}/resume", summary="Resume an enrollment",
          operation_id="ResumeEnrollment", status_code=200, **WRITE)
    async def resume(self, enrollment_id: Id, session: AsyncSession, actor: Actor,
                     data: schemas.EnrollmentChange | None = None) -> schemas.EnrollmentOut:
        """Planning continues at its current step (409 unless paused)."""
        return await self._change(session, actor, enrollment_id, "active", data)

    @post("/{enrollment_id:int}/stop", summary="Stop an enrollment",
          operation_id="StopEnrollment", status_code=200, **WRITE)
    async def stop(self, enrollment_id: Id, session: AsyncSession, actor: Actor,
                   data: schemas.EnrollmentChange | None = None) -> schemas.EnrollmentOut:
        """Ends it for good; its actions not yet dispatched are cancelled. The debtor is not
        enrolled in that strategy again until they leave its segment and come back."""
        return await self._change(session, actor, enrollment_id, "stopped", data)


class ActionController(Controller):
    path = "/v1/actions"
    tags = ["Strategies"]

    @get("/", summary="List actions", operation_id="ListActions", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                    strategy_id: IdFilter = None,
                    status: schemas.ActionStatus | None = None,
                    channel: schemas.ContactChannel | None = None,
                    due_from: date | None = None, due_to: date | None = None,
                    ) -> Page[schemas.ActionOut]:
        """Planned, superseded, deferred, denied, dispatched and cancelled actions in id
        order; ``due_from``/``due_to`` bound the debtor's local day (inclusive)."""
        if due_from is not None and due_to is not None and due_from > due_to:
            raise Invalid("due_from is after due_to", code="invalid_range", param="due_from")
        stmt = _equal(select(Action), (Action.debtor_id, debtor_id),
                      (Action.strategy_id, strategy_id), (Action.status, status),
                      (Action.channel, channel))
        if due_from is not None:
            stmt = stmt.where(Action.due_on >= due_from)
        if due_to is not None:
            stmt = stmt.where(Action.due_on <= due_to)
        rows = (await session.scalars(paginate(stmt, Action.id, limit, starting_after))).all()
        return page_of(rows, limit, service.action_out)

    @get("/{action_id:int}", summary="Get an action", operation_id="GetAction", **READ)
    async def retrieve(self, action_id: Id, session: AsyncSession) -> schemas.ActionOut:
        """One action with its gate verdict and dispatch outcome."""
        return service.action_out(await get_owned(
            session, Action, action_id, session.info["tenant_id"], what="action"))


class TaskController(Controller):
    path = "/v1/tasks"
    tags = ["Tasks"]

    @get("/", summary="List tasks", operation_id="ListTasks", **secured("tasks:read"))
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, queue: str | None = None,
                    status: schemas.TaskStatus | None = None, debtor_id: IdFilter = None,
                    strategy_id: IdFilter = None, due_before: datetime | None = None,
                    ) -> Page[schemas.TaskOut]:
        """Collector tasks in id order (the ones strategies' ``task`` steps create), by
        queue, status, debtor, strategy, or due before an instant."""
        stmt = _equal(select(Task), (Task.queue, queue), (Task.status, status),
                      (Task.debtor_id, debtor_id), (Task.strategy_id, strategy_id))
        if due_before is not None:
            stmt = stmt.where(Task.due_at < due_before)
        rows = (await session.scalars(paginate(stmt, Task.id, limit, starting_after))).all()
        return page_of(rows, limit, service.task_out)

    @get("/{task_id:int}", summary="Get a task", operation_id="GetTask",
         **secured("tasks:read"))
    async def retrieve(self, task_id: Id, session: AsyncSession) -> schemas.TaskOut:
        """One task."""
        return service.task_out(await service.get_task(session, task_id))

    @post("/{task_id:int}/complete", summary="Complete a task", operation_id="CompleteTask",
          status_code=200, **secured("tasks:write"))
    async def complete(self, task_id: Id, session: AsyncSession, actor: Actor,
                       data: schemas.TaskClose | None = None) -> schemas.TaskOut:
        """The task is done (409 ``task_not_open`` unless open)."""
        return service.task_out(await service.close_task(
            session, actor, task_id, "done", data.note if data else None))

    @post("/{task_id:int}/cancel", summary="Cancel a task", operation_id="CancelTask",
          status_code=200, **secured("tasks:write"))
    async def cancel(self, task_id: Id, session: AsyncSession, actor: Actor,
                     data: schemas.TaskClose | None = None) -> schemas.TaskOut:
        """The task will not be done (409 ``task_not_open`` unless open)."""
        return service.task_out(await service.close_task(
            session, actor, task_id, "cancelled", data.note if data else None))


@get("/v1/debtors/{debtor_id:int}/next-action", summary="Explain a debtor's next action",
     operation_id="GetDebtorNextAction", tags=["Strategies"], **READ)
async def next_action(debtor_id: Id, session: AsyncSession) -> schemas.NextActionOut:
    """For each active enrollment of the debtor, what the planner would plan now: strategy,
    version, step, anchor and its date, offset, window, the day and instant, the contact
    gate's verdict with its reason codes and pack rule ids (and the channels the fallback
    skipped), and which contact wins the day when another does. Writes nothing."""
    return await explain.next_actions(session, current_host(), debtor_id, clock.now())


ROUTES = [StrategyController, EnrollmentController, ActionController, TaskController,
          next_action]
