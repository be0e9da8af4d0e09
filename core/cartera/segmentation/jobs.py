"""The ``segmentation.run`` job: a whole-portfolio evaluation with its run summary."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy import func, select, update

from cartera import clock
from cartera.db.engine import tenant_session
from cartera.errors import tenant_facing
from cartera.jobs.registry import JobContext, job
from cartera.portfolio.models import Debtor
from cartera.segmentation.models import SegmentRun
from cartera.segmentation.service import run_segmentation

log = logging.getLogger("cartera.segmentation")

KIND = "segmentation.run"


async def _started(ctx: JobContext, run_id: int) -> None:
    """Show the run as running, and the job's progress as 0 of the tenant's debtors, at once
    (the run itself is one transaction: nothing inside it is visible before it commits)."""
    async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
        await session.execute(update(SegmentRun).where(
            SegmentRun.id == run_id, SegmentRun.status != "succeeded").values(
            status="running", started_at=clock.now()))
        debtors = await session.scalar(select(func.count()).select_from(Debtor).where(
            Debtor.tenant_id == ctx.tenant_id))
    await ctx.progress(0, int(debtors or 0))


@job(KIND)
async def segmentation_run(ctx: JobContext) -> dict[str, Any]:
    """Run ``payload.run_id`` as of ``payload.as_of``; progress goes from 0 to the number of
    debtors when the run commits (a run is one transaction, so there is no honest figure in
    between)."""
    run_id = int(ctx.payload["run_id"])
    as_of = date.fromisoformat(ctx.payload["as_of"])
    try:
        await _started(ctx, run_id)
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            # The row lock makes a duplicate delivery wait, then see 'succeeded' (PostgreSQL).
            run = await session.get(SegmentRun, run_id, with_for_update=True,
                                    populate_existing=True)
            if run is None or run.tenant_id != ctx.tenant_id:
                return {"run_id": run_id, "skipped": "run not found"}
            if run.status == "succeeded":  # delivered twice: already done
                return {"run_id": run_id, "moves": run.moves}
            await run_segmentation(session, run, as_of)
            debtors = int(run.debtors or 0)
            result = {"run_id": run_id, "debtors": debtors, "moves": run.moves,
                      "debtors_per_segment": run.counts}
    except Exception as exc:
        async with ctx.sessionmaker() as session:
            await session.execute(update(SegmentRun).where(SegmentRun.id == run_id).values(
                status="failed", error=tenant_facing(exc, log, "segmentation run",
                                                     run_id=run_id),
                finished_at=clock.now()))
            await session.commit()
        raise
    await ctx.progress(debtors)
    return result
