"""The ``import`` job: runs :func:`cartera.imports.pipeline.run_import` for a queued import.

Payload: ``{"import_id": int, "client_id": str | None, "request_id": str | None}`` (the
client and request are those that uploaded the file, for the audit trail).
"""

from __future__ import annotations

from typing import Any

from cartera.api.context import Actor
from cartera.imports.pipeline import run_import
from cartera.jobs.registry import JobContext, job


def actor_of(ctx: JobContext) -> Actor:
    return Actor(ctx.tenant_id, ctx.payload.get("client_id"), ctx.payload.get("request_id"))


@job("import")
async def import_job(ctx: JobContext) -> dict[str, Any]:
    """Idempotent: a retry replays the file and changes only what is still different."""
    result = await run_import(ctx.sessionmaker, int(ctx.payload["import_id"]), actor_of(ctx),
                              ctx.progress)
    return {"import_id": ctx.payload["import_id"], **result.as_dict()}
