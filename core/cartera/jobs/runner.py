"""Running jobs: the one interface every long or retried piece of work goes through.

``enqueue`` writes the job row in the caller's transaction, so a job exists if and only if
the change that asked for it committed. :class:`InProcessRunner` (SQLite, tests) polls the
table from a task in the API process; the PostgreSQL runner hands jobs to procrastinate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.jobs.models import Job
from cartera.jobs.registry import HANDLERS, JobContext

log = logging.getLogger("cartera.jobs")


class JobRunner(Protocol):
    async def enqueue(self, session: AsyncSession, tenant_id: int, kind: str,
                      payload: dict[str, Any]) -> Job: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def insert_job(session: AsyncSession, tenant_id: int, kind: str,
                     payload: dict[str, Any]) -> Job:
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    job = Job(tenant_id=tenant_id, kind=kind, payload=payload, status="queued")
    session.add(job)
    await session.flush()
    return job


async def execute(sessionmaker: async_sessionmaker[AsyncSession], job_id: int) -> None:
    """Run one job to completion, recording status, result or error. Safe to call again."""
    async with sessionmaker() as session:
        job = await session.get(Job, job_id)
        if job is None or job.status == "succeeded":
            return
        job.status, job.started_at, job.attempts = "running", clock.now(), job.attempts + 1
        kind, tenant_id, payload = job.kind, job.tenant_id, dict(job.payload)
        await session.commit()
    ctx = JobContext(job_id=job_id, tenant_id=tenant_id, payload=payload,
                     sessionmaker=sessionmaker)
    try:
        result = await HANDLERS[kind](ctx)
    except Exception as exc:
        log.error("job failed", extra={"job_id": job_id, "kind": kind,
                                       "error": traceback.format_exception_only(exc)[-1].strip()})
        await _finish(sessionmaker, job_id, "failed", None, f"{type(exc).__name__}: {exc}")
        raise
    await _finish(sessionmaker, job_id, "succeeded", result or {}, None)


async def _finish(sessionmaker: async_sessionmaker[AsyncSession], job_id: int, status: str,
                  result: dict[str, Any] | None, error: str | None) -> None:
    async with sessionmaker() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(
            status=status, result=result, error=error, finished_at=clock.now()))
        await session.commit()


class InProcessRunner:
    """Runs queued jobs one at a time inside this process (the SQLite default)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession],
                 poll_seconds: float = 0.5) -> None:
        self._sessionmaker = sessionmaker
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def enqueue(self, session: AsyncSession, tenant_id: int, kind: str,
                      payload: dict[str, Any]) -> Job:
        job = await insert_job(session, tenant_id, kind, payload)
        self._wake.set()
        return job

    async def start(self) -> None:
        await self._reset_interrupted()
        self._task = asyncio.create_task(self._loop(), name="cartera-jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_pending(self) -> int:
        """Run every queued job now; returns how many ran (tests and the CLI use this)."""
        count = 0
        while (job_id := await self._next()) is not None:
            with contextlib.suppress(Exception):
                await execute(self._sessionmaker, job_id)
            count += 1
        return count

    async def _reset_interrupted(self) -> None:
        # A job left 'running' by a crashed process runs again: handlers are idempotent.
        async with self._sessionmaker() as session:
            await session.execute(update(Job).where(Job.status == "running")
                                  .values(status="queued"))
            await session.commit()

    async def _next(self) -> int | None:
        async with self._sessionmaker() as session:
            return await session.scalar(select(Job.id).where(Job.status == "queued")
                                        .order_by(Job.id).limit(1))

    async def _loop(self) -> None:
        while True:
            await self.run_pending()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
