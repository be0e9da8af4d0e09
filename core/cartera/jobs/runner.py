"""Running jobs: the one interface every long or retried piece of work goes through.

``enqueue`` writes the job row in the caller's transaction, so a job exists if and only if
the change that asked for it committed. :class:`InProcessRunner` (SQLite, tests) polls the
table from a task in the API process; the PostgreSQL runner hands jobs to procrastinate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.errors import tenant_facing
from cartera.jobs.models import Job
from cartera.jobs.registry import HANDLERS, JobContext, run_periodic

log = logging.getLogger("cartera.jobs")


MAX_ATTEMPTS = 5


class RetryLater(Exception):
    """Raised by a handler whose work failed transiently: run it again after a delay."""

    def __init__(self, reason: str, delay_seconds: float = 30.0) -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class PermanentError(Exception):
    """Raised by a handler whose work can never succeed (a bad file, invalid input): the
    job fails now with ``str(exc)`` as its error, and no runner retries it."""


_TRANSIENT_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock detected


def is_transient_db_error(exc: BaseException) -> bool:
    """A database error that may pass if the work is tried again: a serialization failure,
    a deadlock, a lost connection (SQLSTATE class 08, or a connection SQLAlchemy
    invalidated), SQLite's busy database."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    state = str(getattr(orig, "sqlstate", None) or "")
    return (exc.connection_invalidated or state in _TRANSIENT_SQLSTATES
            or state.startswith("08")
            or getattr(orig, "sqlite_errorname", None) in ("SQLITE_BUSY", "SQLITE_LOCKED"))


class JobRunner(Protocol):
    async def enqueue(self, session: AsyncSession, tenant_id: int, kind: str,
                      payload: dict[str, Any], *, run_after: datetime | None = None) -> Job: ...

    async def enqueue_once(self, session: AsyncSession, tenant_id: int, kind: str,
                           payload: dict[str, Any], *, key: str) -> Job | None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def insert_job(session: AsyncSession, tenant_id: int, kind: str,
                     payload: dict[str, Any], run_after: datetime | None = None) -> Job:
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    job = Job(tenant_id=tenant_id, kind=kind, payload=payload, status="queued",
              run_after=run_after)
    session.add(job)
    await session.flush()
    return job


async def execute(sessionmaker: async_sessionmaker[AsyncSession], job_id: int, *,
                  claim: bool = False) -> None:
    """Run one job to completion, recording status, result or error. Safe to call again.

    ``claim``: take the job only if it is still ``queued`` (an atomic compare-and-set), for
    runners without a lock of their own; procrastinate already guarantees one runner.
    """
    async with sessionmaker() as session:
        allowed = ("queued",) if claim else ("queued", "running", "failed")
        taken = await session.execute(
            update(Job).where(Job.id == job_id, Job.status.in_(allowed))
            .values(status="running", started_at=clock.now(), attempts=Job.attempts + 1)
            .returning(Job.kind, Job.tenant_id, Job.payload, Job.attempts))
        row = taken.first()
        await session.commit()
    if row is None:
        return
    kind, tenant_id, payload, attempts = row[0], row[1], dict(row[2]), row[3]
    if kind not in HANDLERS:
        from cartera.jobs.catalog import load_all

        load_all()
    ctx = JobContext(job_id=job_id, tenant_id=tenant_id, payload=payload,
                     sessionmaker=sessionmaker, attempt=attempts)
    try:
        result = await HANDLERS[kind](ctx)
    except RetryLater as exc:
        if attempts >= MAX_ATTEMPTS:
            await _finish(sessionmaker, job_id, "failed", None, f"gave up: {exc}")
        else:
            delay = exc.delay_seconds * 2 ** (attempts - 1)
            async with sessionmaker() as session:
                await session.execute(update(Job).where(Job.id == job_id).values(
                    status="queued", error=str(exc),
                    run_after=clock.now() + timedelta(seconds=delay)))
                await session.commit()
        raise
    except PermanentError as exc:
        await _finish(sessionmaker, job_id, "failed", None, str(exc))
        raise
    except Exception as exc:
        await _finish(sessionmaker, job_id, "failed", None,
                      tenant_facing(exc, log, "job", job_id=job_id, kind=kind))
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
                 poll_seconds: float = 0.5, *, background: bool = True) -> None:
        """``background=False``: jobs run only when :meth:`run_pending` is called (tests
        that must decide when work happens)."""
        self._sessionmaker = sessionmaker
        self._poll = poll_seconds
        self._background = background
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def enqueue(self, session: AsyncSession, tenant_id: int, kind: str,
                      payload: dict[str, Any], *, run_after: datetime | None = None) -> Job:
        job = await insert_job(session, tenant_id, kind, payload, run_after)
        self._wake.set()
        return job

    async def enqueue_once(self, session: AsyncSession, tenant_id: int, kind: str,
                           payload: dict[str, Any], *, key: str) -> Job | None:
        """Enqueue unless a job with this ``key`` is already waiting (then ``None``).

        The waiting job's row is share-locked until the caller commits, so the runner's
        claim (an UPDATE) waits for that commit: the job is certain to see the caller's
        writes. SQLite locks the whole database for a writing transaction anyway.
        """
        waiting = (await session.scalars(
            select(Job).where(Job.tenant_id == tenant_id, Job.kind == kind,
                              Job.status == "queued", Job.run_after.is_(None))
            .with_for_update(read=True))).all()
        if any(job.payload.get("once") == key for job in waiting):
            return None
        return await self.enqueue(session, tenant_id, kind, {**payload, "once": key})

    async def start(self) -> None:
        await self._reset_interrupted()
        if self._background:
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
                await execute(self._sessionmaker, job_id, claim=True)
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
            due = or_(Job.run_after.is_(None), Job.run_after <= clock.now())
            return await session.scalar(select(Job.id).where(Job.status == "queued", due)
                                        .order_by(Job.id).limit(1))

    async def _loop(self) -> None:
        last_periodic = 0.0
        while True:
            if time.monotonic() - last_periodic >= 60:
                last_periodic = time.monotonic()
                await run_periodic(self._sessionmaker, self)
            await self.run_pending()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
