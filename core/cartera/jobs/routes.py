"""HTTP routes: /v1/jobs (follow long work: progress, result, failure)."""

from __future__ import annotations

from typing import cast

from litestar import Controller, get
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.pagination import Id, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.db import get_owned
from cartera.jobs.models import Job, JobStatus
from cartera.jobs.schemas import JobOut


def job_out(j: Job) -> JobOut:
    return JobOut(id=j.id, kind=j.kind, status=cast(JobStatus, j.status),
                  progress_done=j.progress_done,
                  progress_total=j.progress_total, result=j.result, error=j.error,
                  attempts=j.attempts, created_at=j.created_at, started_at=j.started_at,
                  finished_at=j.finished_at)


class JobController(Controller):
    path = "/v1/jobs"
    tags = ["Jobs"]

    @get("/", summary="List jobs", operation_id="ListJobs", **secured("jobs:read"))
    async def index(self, session: AsyncSession, limit: Limit = 20,
                   starting_after: StartingAfter = None, kind: str | None = None,
                   status: str | None = None) -> Page[JobOut]:
        """Background jobs (imports, later segmentation and sends), oldest first."""
        stmt = select(Job)
        if kind is not None:
            stmt = stmt.where(Job.kind == kind)
        if status is not None:
            stmt = stmt.where(Job.status == status)
        rows = (await session.scalars(paginate(stmt, Job.id, limit, starting_after))).all()
        return page_of(rows, limit, job_out)

    @get("/{job_id:int}", summary="Get a job", operation_id="GetJob", **secured("jobs:read"))
    async def retrieve(self, job_id: Id, session: AsyncSession) -> JobOut:
        """One job: status, progress (done of total), result or error."""
        return job_out(await get_owned(session, Job, job_id, session.info["tenant_id"],
                                       what="job"))
