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

from sqlalchemy import event, or_, select, update
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
                 poll_seconds: float = 0.5, *, background: bool = True,
                 stop_timeout: float | None = None) -> None:
        """``background=False``: jobs run only when :meth:`run_pending` is called (tests
        that must decide when work happens). ``stop_timeout``: how long :meth:`stop` lets
        the running pass or job finish before it cancels it (default: the
        ``job_stop_timeout_seconds`` setting)."""
        self._sessionmaker = sessionmaker
        self._poll = poll_seconds
        self._background = background
        self._stop_timeout = stop_timeout
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held = _HeldConnections(sessionmaker, None)

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
        self._stopping = False
        await self._reset_interrupted()
        if self._background:
            self._task = asyncio.create_task(self._loop(), name="cartera-jobs")
            self._held = _HeldConnections(self._sessionmaker, self._task)

    async def stop(self) -> None:
        """Stop gracefully: take no new work, let the running periodic pass or job finish
        (up to the stop timeout), and only then cancel it.

        A cancelled pass or job leaves through its ``async with sessionmaker()`` blocks,
        whose close rolls its transaction back and returns the connection (SQLite's write
        lock with it). A job cancelled mid-way stays ``running``, and the next
        :meth:`start` queues it again (handlers are idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        timeout = self._stop_timeout
        if timeout is None:
            from cartera.settings import get_settings

            timeout = get_settings().job_stop_timeout_seconds
        cancelled = False
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                log.warning("job runner did not stop within %.1f s: cancelling it", timeout)
                cancelled = self._cancel(task)
        except asyncio.CancelledError:  # stop() itself cancelled: take the loop along
            cancelled = self._cancel(task)
            raise
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if cancelled:
                await self._held.release()
            self._held.close()

    def _cancel(self, task: asyncio.Task[None]) -> bool:
        self._held.cancelling()
        return task.cancel()

    async def run_pending(self) -> int:
        """Run every queued job now; returns how many ran (tests and the CLI use this).
        Once :meth:`stop` is called it starts no further job."""
        count = 0
        while not self._stopping and (job_id := await self._next()) is not None:
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
        while not self._stopping:
            if time.monotonic() - last_periodic >= 60:
                last_periodic = time.monotonic()
                await run_periodic(self._sessionmaker, self)
            await self.run_pending()
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)


_THREAD_JOIN_SECONDS = 10.0
"""The longest :meth:`_HeldConnections.release` waits for one connection's thread."""


class _HeldConnections:
    """The SQLite connections the runner's loop task has checked out and not given back.

    Cancelling a task mid-statement does not stop aiosqlite's thread: SQLAlchemy gives up
    the connection (``terminate``), the thread finishes the statement, then closes the
    connection; and sqlite3 keeps a connection whose cancelled statement is still
    referenced open, write lock and all. So once :meth:`cancelling`, a held connection
    SQLAlchemy closes first gets a ROLLBACK queued on its thread (ahead of the close), its
    running statement is interrupted, and :meth:`release` waits for the threads to end.
    (asyncpg's terminate closes the socket: the server rolls back by itself.)"""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession],
                 task: asyncio.Task[None] | None) -> None:
        self._task = task
        self._held: dict[int, Any] = {}
        self._cancelling = False
        bind = sessionmaker.kw.get("bind")
        self._pool = bind.sync_engine.pool if task is not None and bind is not None \
            and bind.dialect.name == "sqlite" else None
        if self._pool is not None:
            for name, fn in self._events():
                event.listen(self._pool, name, fn)

    def _events(self) -> list[tuple[str, Any]]:
        return [("checkout", self._checkout), ("checkin", self._checkin),
                ("close", self._closing), ("close_detached", self._closing)]

    def _checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        with contextlib.suppress(RuntimeError):
            if asyncio.current_task() is self._task:
                self._held[id(dbapi_conn)] = getattr(dbapi_conn, "_connection", None)

    def _checkin(self, dbapi_conn: Any, _record: Any) -> None:
        self._held.pop(id(dbapi_conn), None)

    def _closing(self, dbapi_conn: Any, *_: Any) -> None:
        conn = self._held.get(id(dbapi_conn))
        queue = getattr(conn, "_tx", None)
        if not self._cancelling or queue is None:
            return

        def rollback() -> None:
            raw = getattr(conn, "_connection", None)
            if raw is not None and raw.in_transaction:
                raw.rollback()

        queue.put_nowait((None, rollback))  # runs before the close SQLAlchemy queues next

    def cancelling(self) -> None:
        """The loop task is being cancelled: interrupt what its connections run."""
        self._cancelling = True
        for conn in self._held.values():
            raw = getattr(conn, "_connection", None)
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.interrupt()  # sqlite3: safe from any thread

    async def release(self) -> None:
        """Wait until the cancelled task's connections have rolled back and closed."""
        held, self._held = [c for c in self._held.values() if c is not None], {}
        for conn in held:
            thread = getattr(conn, "_thread", None)
            if thread is not None and thread.is_alive():
                await asyncio.to_thread(thread.join, _THREAD_JOIN_SECONDS)

    def close(self) -> None:
        if self._pool is not None:
            for name, fn in self._events():
                with contextlib.suppress(Exception):
                    event.remove(self._pool, name, fn)
            self._pool = None
