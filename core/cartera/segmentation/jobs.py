"""The ``segmentation.run`` job: a whole-portfolio evaluation with its run summary."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import update

from cartera import clock
from cartera.db.engine import tenant_session
from cartera.jobs.registry import JobContext, job
from cartera.segmentation.models import SegmentRun
from cartera.segmentation.service import run_segmentation

KIND = "segmentation.run"


@job(KIND)
async def segmentation_run(ctx: JobContext) -> dict[str, Any]:
    run_id = int(ctx.payload["run_id"])
    as_of = date.fromisoformat(ctx.payload["as_of"])
    try:
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            # The row lock makes a duplicate delivery wait, then see 'succeeded' (PostgreSQL).
            run = await session.get(SegmentRun, run_id, with_for_update=True,
                                    populate_existing=True)
            if run is None or run.tenant_id != ctx.tenant_id:
                return {"run_id": run_id, "skipped": "run not found"}
            if run.status == "succeeded":  # delivered twice: already done
                return {"run_id": run_id, "moves": run.moves}
            await run_segmentation(session, run, as_of)
            result = {"run_id": run_id, "debtors": run.debtors, "moves": run.moves,
                      "debtors_per_segment": run.counts}
    except Exception as exc:
        async with ctx.sessionmaker() as session:
            await session.execute(update(SegmentRun).where(SegmentRun.id == run_id).values(
                status="failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                finished_at=clock.now()))
            await session.commit()
        raise
    return result
