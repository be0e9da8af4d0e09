"""Replanning one debtor at once, in the transaction of the event that changed them.

The last step of the re-derivation chain (:mod:`cartera.changes`): after a payment or its
reversal, a promise made or broken, an inbound reply, an opt-out, a delivery failure, a
segment or stage change, the planner's pass runs for that debtor alone
(:func:`cartera.strategies.planner.plan_tenant` with ``debtors``: the same statements,
each limited to the debtor): they exit a strategy whose segments they left, enter the one
their new segment is bound to, stop when a stop rule now matches (paid, promise pending,
opted out everywhere...), and their next due step is planned and gated now.

It takes the debtor's row lock (:func:`cartera.portfolio.locks.lock_debtor_rows`, which a
money write or a summary refresh of the chain holds already), so two events of one debtor
replan one after the other, the second seeing what the first did; then the tenant's
strategy lock *shared*: replannings of different debtors run side by side, and none runs
during an activation or a whole-portfolio pass (it waits for it; a pass takes no debtor
row lock, so the two orders cannot deadlock).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes
from cartera.plugins.registry import current_host
from cartera.portfolio.locks import lock_debtor_rows
from cartera.strategies.models import StrategyVersion
from cartera.strategies.planner import PlanResult, plan_tenant


async def replan_debtor(session: AsyncSession, tenant_id: int, debtor_id: int) -> PlanResult:
    """Replan one debtor in the caller's transaction (nothing when the tenant has no
    strategy in use). The pass's instant is taken now, after the chain's earlier steps:
    an enrollment ended by it is not older than the segment entry they just recorded."""
    await lock_debtor_rows(session, [debtor_id])
    return await plan_tenant(session, current_host(), tenant_id, debtors=debtor_id)


@changes.step("plan")
async def rederive_plan(session: AsyncSession, change: changes.Change) -> None:
    """The chain's last step: the debtor's enrollment and next actions. A change of many
    debtors at once is left to the tenant's next pass; a debtor being deleted takes their
    enrollments and actions with them (foreign keys)."""
    if change.debtor_id is None or change.kind == "deleted":
        return
    in_use = await session.scalar(select(StrategyVersion.id).where(
        StrategyVersion.tenant_id == change.tenant_id,
        StrategyVersion.status.in_(("active", "retired"))).limit(1))
    if in_use is None:  # a tenant without strategies pays one indexed look-up
        return
    await replan_debtor(session, change.tenant_id, change.debtor_id)
