"""HTTP routes: /v1/segments (rule set, preview, runs, explain)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor, app_context
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.segmentation import schemas, service
from cartera.segmentation.jobs import KIND
from cartera.segmentation.models import SegmentRun

READ = secured("segments:read")
WRITE = secured("segments:write")

AsOf = Annotated[date | None, Parameter(description="Business date to evaluate at; default: "
                                                    "today in the tenant's zone.")]


class SegmentController(Controller):
    path = "/v1/segments"
    tags = ["Segments"]

    @get("/", summary="Get the segment rule set", operation_id="GetSegments", **READ)
    async def index(self, session: AsyncSession, actor: Actor) -> schemas.RuleSetOut:
        """The active segments in evaluation order, with how many debtors each holds now."""
        return await service.rule_set_out(session, actor.tenant_id)

    @put("/", summary="Replace the segment rule set", operation_id="ReplaceSegments", **WRITE)
    async def replace(self, data: schemas.RuleSetIn, session: AsyncSession,
                      actor: Actor) -> schemas.RuleSetOut:
        """Validate and save the ordered rule set (a new version). A debtor belongs to the
        first segment whose rule matches; the last must be a catch-all (``{"all": []}``).
        Errors name the rule at fault, e.g. ``segments[2].rule.all[1].value``. Memberships
        change at the next run (``POST /v1/segments/runs``)."""
        await service.save_rule_set(session, actor, data)
        return await service.rule_set_out(session, actor.tenant_id)

    @post("/preview", summary="Preview a draft rule set", operation_id="PreviewSegments",
          status_code=200, **READ)
    async def preview(self, data: schemas.RuleSetIn, session: AsyncSession, actor: Actor,
                      as_of: AsOf = None) -> schemas.PreviewOut:
        """What-if: debtors and amounts per draft segment per currency, and the move matrix
        from the current segments. Nothing is saved."""
        day = await service.today(session, actor.tenant_id, as_of)
        return await service.preview(session, actor.tenant_id, data, day)

    @post("/runs", summary="Start a segmentation run", operation_id="StartSegmentRun",
          status_code=202, **WRITE)
    async def start_run(self, request: Request[Any, Any, Any], session: AsyncSession,
                        actor: Actor, data: schemas.RunCreate | None = None) -> schemas.RunOut:
        """Evaluate the whole portfolio as a background job; follow it here or at
        ``/v1/jobs/{job_id}``."""
        day = await service.today(session, actor.tenant_id, data.as_of if data else None)
        run = SegmentRun(tenant_id=actor.tenant_id, status="queued", as_of=day, counts={},
                         debtors=0, moves=0)
        session.add(run)
        await session.flush()
        job = await app_context(request).jobs.enqueue(
            session, actor.tenant_id, KIND, {"run_id": run.id, "as_of": day.isoformat(),
             # one run per tenant at a time (procrastinate's queueing lock)
             "lock": f"segmentation:{actor.tenant_id}"})
        run.job_id = job.id
        await session.flush()
        await session.refresh(run)
        return service.run_out(run)

    @get("/runs", summary="List segmentation runs", operation_id="ListSegmentRuns", **READ)
    async def runs(self, session: AsyncSession, limit: Limit = 20,
                   starting_after: StartingAfter = None) -> Page[schemas.RunOut]:
        """Runs in id order with their summaries."""
        rows = (await session.scalars(paginate(select(SegmentRun), SegmentRun.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, service.run_out)

    @get("/runs/{run_id:int}", summary="Get a segmentation run", operation_id="GetSegmentRun",
         **READ)
    async def run(self, run_id: int, session: AsyncSession, actor: Actor) -> schemas.RunOut:
        """Status and summary: duration, debtors per segment, moves."""
        return service.run_out(await service.get_run(session, actor.tenant_id, run_id))

    @get("/history", summary="List segment moves", operation_id="ListSegmentMoves", **READ)
    async def history(self, session: AsyncSession, actor: Actor, limit: Limit = 50,
                      starting_after: StartingAfter = None,
                      debtor_id: int | None = None) -> Page[schemas.MoveOut]:
        """Membership history, oldest first: each time a debtor entered a segment."""
        rows = await service.history(session, actor.tenant_id, debtor_id, limit,
                                     starting_after)
        return page_of(rows, limit, lambda r: r)

    @get("/explain/{debtor_id:int}", summary="Explain a debtor's segment",
         operation_id="ExplainDebtorSegment", **READ)
    async def explain(self, debtor_id: int, session: AsyncSession, actor: Actor,
                      as_of: AsOf = None) -> schemas.ExplainOut:
        """Which segment the rules give this debtor and why: each segment's rule trace, in
        order, with the feature values that decided it."""
        day = await service.today(session, actor.tenant_id, as_of)
        return await service.explain(session, actor.tenant_id, debtor_id, day)
