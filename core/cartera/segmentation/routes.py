"""HTTP routes: /v1/segments (rule set, preview, runs, explain, brackets) and /v1/stages."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor, app_context
from cartera.api.etag import IfMatch, check_content, content_etag
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.segmentation import schemas, service, stages
from cartera.segmentation.models import SegmentRun
from cartera.segmentation.schedule import queue_run
from cartera.types import Currency

READ = secured("segments:read")
WRITE = secured("segments:write")

AsOf = Annotated[date | None, Parameter(description="Business date to evaluate at; default: "
                                                    "today in the tenant's zone.")]


class SegmentController(Controller):
    path = "/v1/segments"
    tags = ["Segments"]

    @get("/", summary="Get the segment rule set", operation_id="GetSegments", **READ)
    async def index(self, session: AsyncSession,
                    actor: Actor) -> Response[schemas.RuleSetOut]:
        """The active segments in evaluation order, with how many debtors each holds now
        (its `ETag` names the rule set, not the counts: for `If-Match` on the `PUT`)."""
        return _tagged(await service.rule_set_out(session, actor.tenant_id), _rule_set)

    @put("/", summary="Replace the segment rule set", operation_id="ReplaceSegments", **WRITE)
    async def replace(self, data: schemas.RuleSetIn, session: AsyncSession,
                      actor: Actor, if_match: IfMatch = None) -> Response[schemas.RuleSetOut]:
        """Validate and save the ordered rule set (a new version). A debtor belongs to the
        first segment whose rule matches; the last must be a catch-all (``{"all": []}``).
        Errors name the rule at fault, e.g. ``segments[2].rule.all[1].value``. Memberships
        change at the next run (``POST /v1/segments/runs``). `If-Match` (the `ETag` of your
        read): only if no one replaced the rule set since, else 412."""
        await service.lock_rule_sets(session, actor.tenant_id)
        if if_match is not None:
            check_content(if_match, _rule_set(
                await service.rule_set_out(session, actor.tenant_id)))
        await service.save_rule_set(session, actor, data)
        return _tagged(await service.rule_set_out(session, actor.tenant_id), _rule_set)

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
        run = await queue_run(session, app_context(request).jobs, actor.tenant_id, day)
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

    @get("/brackets", summary="Suggest amount brackets", operation_id="SuggestAmountBrackets",
         **READ)
    async def brackets(
        self, session: AsyncSession, actor: Actor, currency: Currency,
        feature: Literal["overdue_amount", "outstanding_amount"] = "overdue_amount",
        brackets: Annotated[int, Parameter(ge=2, le=10, description="How many brackets.")] = 5,
        as_of: AsOf = None,
    ) -> schemas.BracketsOut:
        """Boundaries (nice round figures such as 500 / 1,000 / 2,500 / 5,000 / 10,000) that
        split the debtors with a positive amount in ``currency`` into brackets holding
        similar shares, from quantiles computed in SQL, with each bracket's count and share.
        Rounding may merge boundaries, giving fewer brackets than asked."""
        day = await service.today(session, actor.tenant_id, as_of)
        return await service.brackets(session, actor.tenant_id, feature, currency, brackets,
                                      day)


class StageController(Controller):
    path = "/v1/stages"
    tags = ["Stages"]

    @get("/", summary="Get the collection stages", operation_id="GetStages", **READ)
    async def index(self, session: AsyncSession, actor: Actor) -> Response[schemas.StagesOut]:
        """The stages in escalation order with their days-past-due ranges and how many
        debtors each holds. Defaults: preventive (0, nothing past due), administrative
        (1-30), extrajudicial (31-180), judicial (181+). Its `ETag` names the stages, not
        the counts (for `If-Match` on the `PUT`)."""
        return _tagged(await stages.stages_out(session, actor.tenant_id), _stage_set)

    @put("/", summary="Replace the collection stages", operation_id="ReplaceStages", **WRITE)
    async def replace(self, data: schemas.StagesIn, session: AsyncSession,
                      actor: Actor, if_match: IfMatch = None) -> Response[schemas.StagesOut]:
        """Replace the ordered set. Ranges must ascend with the order, be contiguous and
        cover 0..∞ (422 naming e.g. ``stages[2].min_dpd`` otherwise). Debtors move at the
        next segmentation run; a stage holding debtors set there by hand cannot be removed.
        `If-Match` (the `ETag` of your read): only if no one replaced them since, else 412."""
        await service.lock_rule_sets(session, actor.tenant_id)
        if if_match is not None:
            check_content(if_match, _stage_set(await stages.stages_out(session, actor.tenant_id)))
        await stages.replace_stages(session, actor, data)
        return _tagged(await stages.stages_out(session, actor.tenant_id), _stage_set)

    @get("/history", summary="List stage changes", operation_id="ListStageMoves", **READ)
    async def history(self, session: AsyncSession, actor: Actor, limit: Limit = 50,
                      starting_after: StartingAfter = None,
                      debtor_id: IdFilter = None) -> Page[schemas.StageMoveOut]:
        """Stage history, oldest first: every change, with who and why for manual ones."""
        rows = await stages.history(session, actor.tenant_id, debtor_id, limit, starting_after)
        return page_of(rows, limit, lambda r: r)

    @get("/debtors/{debtor_id:int}", summary="Get a debtor's stage",
         operation_id="GetDebtorStage", **READ)
    async def debtor(self, debtor_id: Id, session: AsyncSession, actor: Actor,
                     as_of: AsOf = None) -> schemas.DebtorStageOut:
        """The debtor's stage and why: days past due and the range they fall in, or who set
        it by hand and why."""
        day = await service.today(session, actor.tenant_id, as_of)
        return await stages.debtor_stage(session, actor.tenant_id, debtor_id, day)

    @post("/debtors/{debtor_id:int}", summary="Set a debtor's stage by hand",
          operation_id="SetDebtorStage", status_code=200, **WRITE)
    async def set_stage(self, debtor_id: Id, data: schemas.StageSet, session: AsyncSession,
                        actor: Actor) -> schemas.DebtorStageOut:
        """Pin the debtor to a stage (e.g. sent to judicial) with a reason; it sticks until
        released, whatever the days past due. Recorded in the stage history."""
        day = await service.today(session, actor.tenant_id, None)
        return await stages.set_manual(session, actor, debtor_id, data, day)

    @delete("/debtors/{debtor_id:int}", summary="Release a debtor's manual stage",
            operation_id="ReleaseDebtorStage", **WRITE)
    async def release(self, debtor_id: Id, session: AsyncSession, actor: Actor) -> None:
        """The debtor follows days past due again, at once (409 if not set by hand); the
        release is recorded in the stage history."""
        day = await service.today(session, actor.tenant_id, None)
        await stages.release(session, actor, debtor_id, day)


def _rule_set(out: schemas.RuleSetOut) -> list[Any]:
    """What the rule set's tag names: its version and rules, not the debtors they hold."""
    return [out.version, [[g.code, g.name, g.description, g.rule] for g in out.segments]]


def _stage_set(out: schemas.StagesOut) -> list[Any]:
    """What the stages' tag names: their codes, names and ranges, not the debtors held."""
    return [[g.code, g.name, g.position, g.min_dpd, g.max_dpd] for g in out.stages]


def _tagged(out: Any, definition: Any) -> Response[Any]:
    return Response(out, headers={"ETag": content_etag(definition(out))})
