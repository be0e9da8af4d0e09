"""The PostgreSQL job runner: our ``jobs`` rows, executed by procrastinate workers.

Enqueue is transactional. ``enqueue`` inserts the ``jobs`` row *and* defers the procrastinate
job on the very psycopg connection that carries the caller's SQLAlchemy transaction
(procrastinate 3's ``configure(connection=...)``). Both rows commit or roll back together:
no job runs for a change that rolled back, and no committed job is lost because the process
died between commit and defer. There is therefore no outbox relay on the hot path.

Guarantees, with any number of ``cartera worker`` processes on any number of machines:

* procrastinate fetches with ``SELECT ... FOR UPDATE SKIP LOCKED``: each deferred job goes to
  exactly one worker at a time.
* ``queueing_lock = "job:<id>"``: one of our job rows is never waiting twice in the queue
  (a second defer raises ``AlreadyEnqueued``, which :meth:`ProcrastinateRunner.defer` turns
  into ``False``).
* ``lock`` = the payload's ``"lock"`` (e.g. ``"debtor:42"``, ``"import:7"``) or else
  ``"job:<id>"``: jobs sharing a lock never run at the same time, in any process.
* Failures are retried with exponential backoff (:data:`DEFAULT_RETRY`); between attempts
  the row shows ``queued`` with the last error, after the last one ``failed``. A
  :class:`~cartera.jobs.runner.PermanentError` is never retried (the row shows ``failed``
  at once), whatever the strategy.
* At-least-once: the periodic ``cartera.maintenance`` task (every minute, deferred once per
  minute cluster-wide by procrastinate's periodic deferrer) retries jobs whose worker stopped
  sending heartbeats (a crashed or killed worker), and re-defers ``queued`` rows older than
  :data:`ORPHAN_AFTER` that procrastinate does not know about (rows written by an in-process
  runner, or a procrastinate job deleted by hand). Handlers must be idempotent;
  :func:`cartera.jobs.runner.execute` already skips rows that succeeded.

The API process only defers (``start`` opens the connector, ``stop`` closes it); jobs run in
``cartera worker`` processes (:func:`run_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime, timedelta
from typing import Any

from procrastinate import App, BaseRetryStrategy, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Job as ProcrastinateJob
from procrastinate.retry import RetryDecision
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.jobs.models import Job
from cartera.jobs.registry import install_runner, run_periodic
from cartera.jobs.runner import MAX_ATTEMPTS, InProcessRunner, PermanentError, execute, insert_job
from cartera.ops.heap import freeze_startup_heap
from cartera.settings import Settings

log = logging.getLogger("cartera.jobs")

QUEUE = "cartera"
RUN_JOB = "cartera.run_job"
MAINTENANCE = "cartera.maintenance"
DEFAULT_RETRY = RetryStrategy(max_attempts=MAX_ATTEMPTS - 1, exponential_wait=5)
"""As many runs as the in-process runner's :data:`~cartera.jobs.runner.MAX_ATTEMPTS` (five):
procrastinate's ``max_attempts`` counts *retries* after the first run; the retries wait 5 s,
25 s, 125 s and 625 s."""
ORPHAN_AFTER = timedelta(seconds=30)
STALLED_AFTER_SECONDS = 30.0
"""A worker silent for this long is dead (its heartbeat is every 10 s)."""

_ORPHANS = text("""
    SELECT j.id, j.payload FROM jobs j
    WHERE j.status = 'queued' AND j.created_at < :cutoff
      AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs p
                      WHERE p.queueing_lock = COALESCE(j.payload->>'once', 'job:' || j.id::text)
                        AND p.status IN ('todo', 'doing'))
    ORDER BY j.id LIMIT 1000
""")


class _NoRetryOnPermanent(BaseRetryStrategy):
    """``inner``, except that a :class:`PermanentError` is never retried."""

    def __init__(self, inner: BaseRetryStrategy) -> None:
        self.inner = inner

    def get_retry_decision(self, *, exception: BaseException,
                           job: ProcrastinateJob) -> RetryDecision | None:
        if isinstance(exception, PermanentError):
            return None
        return self.inner.get_retry_decision(exception=exception, job=job)


class _Waiting(Exception):
    """A job with the same queueing lock was deferred by another transaction."""


def conninfo(database_url: str) -> str:
    """``postgresql+psycopg://u:p@h/db`` -> ``postgresql://u:p@h/db`` for libpq."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def job_lock(job_id: int, payload: dict[str, Any]) -> str | None:
    """The payload's ``lock``, if any. Locks are opt-in: procrastinate's fetch checks every
    waiting job's lock against the others, which costs ~0.1 s per fetch with thousands of
    locked jobs waiting (measured: 19 sends/s with a lock per job, see bench_send.py);
    ``queueing_lock`` already keeps one job row from being queued twice."""
    lock = payload.get("lock")
    return str(lock) if lock else None


class ProcrastinateRunner:
    """:class:`~cartera.jobs.runner.JobRunner` backed by a procrastinate ``App``."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], *,
                 retry: RetryStrategy = DEFAULT_RETRY, pool_max_size: int = 4) -> None:
        self._sessionmaker = sessionmaker
        self.app = App(connector=PsycopgConnector(
            conninfo=conninfo(settings.database_url), min_size=1, max_size=pool_max_size))

        @self.app.task(name=RUN_JOB, queue=QUEUE, retry=_NoRetryOnPermanent(retry),
                       pass_context=True)
        async def run_job(context: JobContext, job_id: int) -> None:
            try:
                await execute(sessionmaker, job_id)
            except Exception as exc:
                if run_job.get_retry_exception(exc, context.job) is not None:
                    await self._mark_retrying(job_id)
                raise

        @self.app.periodic(cron="* * * * *", queueing_lock=MAINTENANCE)
        @self.app.task(name=MAINTENANCE, queue=QUEUE, pass_context=False)
        async def maintenance(timestamp: int) -> None:
            await self.maintenance()
            await run_periodic(sessionmaker, self)

        self.run_job = run_job

    # -- JobRunner -------------------------------------------------------------------------

    async def enqueue(self, session: AsyncSession, tenant_id: int, kind: str,
                      payload: dict[str, Any], *, run_after: datetime | None = None) -> Job:
        """Insert the job row and defer it, both in the caller's transaction."""
        job = await insert_job(session, tenant_id, kind, payload, run_after)
        connection = await (await session.connection()).get_raw_connection()
        await self.defer(job.id, payload, connection=connection.driver_connection,
                         run_after=run_after)
        return job

    async def enqueue_once(self, session: AsyncSession, tenant_id: int, kind: str,
                           payload: dict[str, Any], *, key: str) -> Job | None:
        """Enqueue unless a job with ``key`` is already waiting (then ``None``).

        The key is procrastinate's ``queueing_lock``: at most one such job waits at a time
        (one may run meanwhile). A waiting job found here is locked ``FOR SHARE`` until the
        caller commits; procrastinate fetches with ``FOR UPDATE SKIP LOCKED``, so no worker
        starts it before the caller's writes are visible to it.
        """
        for _ in range(3):
            if await self._hold_waiting(session, key):
                return None
            try:
                async with session.begin_nested():
                    job = await insert_job(session, tenant_id, kind, {**payload, "once": key})
                    raw = await (await session.connection()).get_raw_connection()
                    if not await self.defer(job.id, payload, connection=raw.driver_connection,
                                            queueing_lock=key):
                        raise _Waiting
            except _Waiting:
                continue  # another transaction deferred it meanwhile: hold that one
            return job
        raise RuntimeError(f"could not enqueue or find the waiting job {key!r}")

    async def _hold_waiting(self, session: AsyncSession, key: str) -> bool:
        found = await session.execute(text(
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :key AND status = 'todo' "
            "FOR SHARE"), {"key": key})
        return found.first() is not None

    async def start(self) -> None:
        """Open the connector (the API defers; workers are separate processes)."""
        await self.app.open_async()

    async def stop(self) -> None:
        await self.app.close_async()

    # -- the rest --------------------------------------------------------------------------

    async def defer(self, job_id: int, payload: dict[str, Any], *,
                    connection: Any | None = None, run_after: datetime | None = None,
                    queueing_lock: str | None = None) -> bool:
        """Hand one job row to procrastinate; ``False`` if it is already waiting."""
        try:
            await self.run_job.configure(
                lock=job_lock(job_id, payload),
                queueing_lock=queueing_lock or payload.get("once") or f"job:{job_id}",
                connection=connection, schedule_at=run_after,
            ).defer_async(job_id=job_id)
        except AlreadyEnqueued:
            return False
        return True

    async def maintenance(self) -> None:
        """Retry jobs of dead workers; re-defer queued rows procrastinate does not know."""
        manager = self.app.job_manager
        for stalled in await manager.get_stalled_jobs(
                queue=QUEUE, task_name=RUN_JOB, seconds_since_heartbeat=STALLED_AFTER_SECONDS):
            log.warning("retrying stalled job", extra={"procrastinate_id": stalled.id})
            await manager.retry_job(stalled)
        async with self._sessionmaker() as session:
            rows = (await session.execute(
                _ORPHANS, {"cutoff": clock.now() - ORPHAN_AFTER})).all()
        for job_id, payload in rows:
            if await self.defer(job_id, payload or {}):
                log.warning("re-deferred orphan job", extra={"job_id": job_id})

    async def run_worker(self, *, concurrency: int = 1, wait: bool = True,
                         install_signal_handlers: bool = True) -> None:
        """Run a procrastinate worker on our queue (``wait=False``: until it is empty)."""
        await self.app.run_worker_async(
            queues=[QUEUE], concurrency=concurrency, wait=wait, name="cartera",
            delete_jobs="successful", install_signal_handlers=install_signal_handlers,
            listen_notify=wait)

    async def _mark_retrying(self, job_id: int) -> None:
        async with self._sessionmaker() as session:
            await session.execute(update(Job).where(Job.id == job_id)
                                  .values(status="queued", finished_at=None))
            await session.commit()


async def run_worker(settings: Settings, concurrency: int = 1) -> None:
    """``cartera worker``: procrastinate on PostgreSQL, the in-process loop on SQLite.

    SIGINT/SIGTERM stop it gracefully: running jobs finish (procrastinate's own handlers on
    PostgreSQL; on SQLite the current batch finishes before the loop exits).
    """
    from cartera.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        if settings.is_sqlite:
            in_process = InProcessRunner(sessionmaker)
            install_runner(in_process)
            freeze_startup_heap()
            await _run_in_process(in_process)
            return
        runner = ProcrastinateRunner(settings, sessionmaker, pool_max_size=concurrency + 2)
        install_runner(runner)
        async with runner.app.open_async():
            freeze_startup_heap()
            await runner.run_worker(concurrency=concurrency)
    finally:
        await engine.dispose()


async def _run_in_process(runner: InProcessRunner, poll_seconds: float = 0.5) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            if await runner.run_pending() == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_seconds)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
