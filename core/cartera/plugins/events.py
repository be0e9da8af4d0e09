"""Domain events for plugins' observer hooks, delivered after the change commits.

:func:`publish` queues a ``plugins.emit`` job in the caller's transaction (an outbox): the
event reaches plugins if and only if the change committed, at least once, never blocking
the request. Nothing is queued when no installed plugin observes that hook.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from cartera_sdk import events
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.jobs.registry import JobContext, current_runner, job
from cartera.plugins.registry import current_host

EVENT_TYPES: dict[str, type[events.DomainEvent]] = {
    "on_payment_received": events.PaymentReceived,
    "on_interaction_recorded": events.InteractionRecorded,
    "on_segment_changed": events.SegmentChanged,
    "on_debtor_stage_changed": events.DebtorStageChanged,
    "on_promise_broken": events.PromiseBroken,
}


def observed(hook: str) -> bool:
    return bool(getattr(current_host().pm.hook, hook).get_hookimpls())


def base_fields(tenant_id: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "tenant_id": str(tenant_id),
            "occurred_at": clock.now()}


async def publish(session: AsyncSession, tenant_id: int, hook: str,
                  event: events.DomainEvent) -> None:
    if hook not in EVENT_TYPES or not observed(hook):
        return
    await current_runner().enqueue(session, tenant_id, "plugins.emit",
                                   {"hook": hook, "event": msgspec.to_builtins(event)})


@job("plugins.emit")
async def emit(job_ctx: JobContext) -> dict[str, Any]:
    hook = str(job_ctx.payload["hook"])
    event = msgspec.convert(job_ctx.payload["event"], EVENT_TYPES[hook])
    await current_host().emit(hook, event)
    return {"hook": hook, "event_id": event.event_id}
