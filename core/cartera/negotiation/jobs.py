"""The periodic settlement of promises and plans as the calendar moves.

About once a minute (``every_minute``: procrastinate's maintenance task on PostgreSQL, the
in-process runner on SQLite) one transaction settles, over every tenant at once, the pending
promises whose promised date is before their tenant's business day and the active plans
whose next grace deadline is (see :func:`cartera.negotiation.status.settle_due`: one
UPDATE per table, not a loop over rows), publishes ``on_promise_broken`` for each promise it
breaks, and re-segments the debtors whose promises or plans changed, since segment rules
read them (``broken_promises``, ``active_installment_plan``). Most minutes nothing is due
and the two UPDATEs find no row through their ``(status, date)`` indexes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import changes, clock
from cartera.jobs.registry import every_minute
from cartera.negotiation.status import Settled, local_days, settle_due
from cartera.tenants.models import Tenant

RESEGMENT_ONE_BY_ONE = 100
"""A tenant with more changed debtors than this is re-segmented by one whole-tenant pass
(set-based; it writes only the debtors whose stage or segment changes) instead of one
single-debtor evaluation each."""


@every_minute
async def settle_due_promises_and_plans(sessionmaker: async_sessionmaker[AsyncSession],
                                        runner: Any) -> None:
    """Break (or keep) due promises and plans everywhere; idempotent, so calling it every
    minute, or twice, is harmless."""
    async with sessionmaker() as session:
        await settle_and_resegment(session)
        await session.commit()


async def settle_and_resegment(session: AsyncSession) -> Settled:
    """The job's work in the caller's transaction (tests call it directly)."""
    now = clock.now()
    days = await local_days(session, now)
    settled = await settle_due(session, now, days)
    await resegment(session, settled, days)
    return settled


async def resegment(session: AsyncSession, settled: Settled, days: dict[str, Any]) -> None:
    """Re-derive (:mod:`cartera.changes`: placement, strategy plan) the debtors whose
    promises or plans changed, each as of its tenant's business day."""
    per_tenant: dict[int, list[int]] = defaultdict(list)
    for tenant_id, debtor_id in sorted(settled.debtors):
        per_tenant[tenant_id].append(debtor_id)
    if not per_tenant:
        return
    zones = {int(tid): str(tz) for tid, tz in (await session.execute(
        select(Tenant.id, Tenant.timezone).where(Tenant.id.in_(per_tenant)))).all()}
    scoped = session.info.get("tenant_id")
    try:
        for tenant_id, debtor_ids in per_tenant.items():
            # Like a tenant session, for the ORM reads of the evaluation.
            session.info["tenant_id"] = tenant_id
            as_of = days.get(zones[tenant_id]) or clock.today_in(zones[tenant_id])
            if len(debtor_ids) > RESEGMENT_ONE_BY_ONE:
                await changes.tenant_changed(session, tenant_id, "promise_settled", today=as_of)
                continue
            for debtor_id in debtor_ids:
                await changes.debtor_changed(session, tenant_id, debtor_id, "promise_settled",
                                             today=as_of)
    finally:
        if scoped is None:
            session.info.pop("tenant_id", None)
        else:
            session.info["tenant_id"] = scoped
