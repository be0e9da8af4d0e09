"""Jobs of the ERP sync: ``erp_sync`` (one run), ``erp_post`` (the outbox of one
integration), and the minute's housekeeping that queues scheduled runs and due postings.

``erp_sync`` payload: ``{"run_id": int, "client_id": str | None, "request_id": str | None,
"lock": "erpsync:<integration id>"}`` (one run per integration at a time). A transient
failure is retried by the runner with backoff (:class:`~cartera.jobs.runner.RetryLater`);
every attempt resumes at the stored cursors.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.api.context import Actor
from cartera.erpsync import postings, sync
from cartera.jobs.registry import JobContext, every_minute, job
from cartera.jobs.runner import MAX_ATTEMPTS, PermanentError, RetryLater

RETRY_DELAY_SECONDS = 30.0
"""The runner's first wait before running a failed run again (then doubled)."""


@job(sync.KIND)
async def erp_sync_job(ctx: JobContext) -> dict[str, Any]:
    actor = Actor(ctx.tenant_id, ctx.payload.get("client_id"), ctx.payload.get("request_id"))

    async def progress(done: int, _total: int) -> None:
        await ctx.progress(done)

    try:
        run = await sync.run_sync(ctx.sessionmaker, int(ctx.payload["run_id"]), actor,
                                  progress, may_retry=ctx.attempt < MAX_ATTEMPTS)
    except sync.SyncFailed as exc:
        if exc.retry:
            raise RetryLater(str(exc), RETRY_DELAY_SECONDS) from exc
        raise PermanentError(str(exc)) from exc
    return {"run_id": run.id, "rows_in": run.rows_in, "rows_changed": run.rows_changed,
            "rows_failed": run.rows_failed}


@job(postings.KIND)
async def erp_post_job(ctx: JobContext) -> dict[str, Any]:
    """Post the integration's due postings (idempotent: each is claimed, and the ERP is
    asked for the payment's reference before it is posted)."""
    return await postings.post_due(ctx.sessionmaker, int(ctx.payload["integration_id"]),
                                   ctx.tenant_id)


@every_minute
async def erp_housekeeping(sessionmaker: async_sessionmaker[AsyncSession], runner: Any) -> None:
    """Queue the scheduled runs that are due, add missing postings, queue due postings."""
    await sync.queue_scheduled(sessionmaker, runner)
    await postings.sweep(sessionmaker)
    await queue_postings(sessionmaker, runner)


async def queue_postings(sessionmaker: async_sessionmaker[AsyncSession], runner: Any) -> None:
    for tenant_id, integration_id in await postings.due_integrations(sessionmaker):
        async with sessionmaker() as session, session.begin():
            await runner.enqueue_once(session, tenant_id, postings.KIND,
                                      {"integration_id": integration_id,
                                       "lock": f"erppost:{integration_id}"},
                                      key=f"erppost:{integration_id}")
