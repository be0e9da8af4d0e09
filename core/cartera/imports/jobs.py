"""The ``import`` job: runs :func:`cartera.imports.pipeline.run_import` for a queued import,
and the periodic deletion of uploads past their retention period.

Payload: ``{"import_id": int, "client_id": str | None, "request_id": str | None}`` (the
client and request are those that uploaded the file, for the audit trail).

The job and its import always say the same: a transient database error is retried
(:class:`~cartera.jobs.runner.RetryLater`; both ``queued``, with the error) up to the
runner's last attempt; any other failure, or a transient one on the last attempt, is
permanent (:class:`~cartera.jobs.runner.PermanentError`; both ``failed``, same error).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.api.context import Actor
from cartera.imports.pipeline import ImportFailed, run_import
from cartera.imports.retention import purge_expired_uploads
from cartera.jobs.registry import JobContext, every_minute, job
from cartera.jobs.runner import MAX_ATTEMPTS, PermanentError, RetryLater
from cartera.settings import get_settings

RETRY_DELAY_SECONDS = 5.0
"""The in-process runner's first wait before retrying a transient failure (then doubled)."""


def actor_of(ctx: JobContext) -> Actor:
    return Actor(ctx.tenant_id, ctx.payload.get("client_id"), ctx.payload.get("request_id"))


@job("import")
async def import_job(ctx: JobContext) -> dict[str, Any]:
    """Idempotent: a retry replays the file and changes only what is still different."""
    try:
        result = await run_import(ctx.sessionmaker, int(ctx.payload["import_id"]),
                                  actor_of(ctx), ctx.progress,
                                  may_retry=ctx.attempt < MAX_ATTEMPTS)
    except ImportFailed as exc:
        if exc.retry:
            raise RetryLater(str(exc), RETRY_DELAY_SECONDS) from exc
        raise PermanentError(str(exc)) from exc
    return {"import_id": ctx.payload["import_id"], **result.as_dict()}


@every_minute
async def purge_import_uploads(sessionmaker: async_sessionmaker[AsyncSession],
                               runner: Any) -> None:
    """Delete the uploads of imports that ended longer ago than the retention period."""
    await purge_expired_uploads(sessionmaker, get_settings().import_retention_days)
