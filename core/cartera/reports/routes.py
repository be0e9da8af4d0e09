"""HTTP routes: /v1/aging."""

from __future__ import annotations

from datetime import date

from litestar import get
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.api.pagination import IdFilter
from cartera.api.security import secured
from cartera.portfolio.service import tenant_today
from cartera.reports.aging import AgingReport, aging_report


@get("/v1/aging", summary="Aging report", operation_id="GetAgingReport", tags=["Reports"],
     **secured("reports:read"))
async def aging(session: AsyncSession, actor: Actor, as_of: date | None = None,
                portfolio_id: IdFilter = None, product: str | None = None,
                zone: str | None = None, currency: str | None = None) -> AgingReport:
    """Open receivables per currency and bucket (`current`, `1_30`, `31_60`, `61_90`,
    `91_180`, `181_plus`; days past due, `current` not yet due):
    obligation counts, distinct debtors and amounts, filterable by portfolio, product, zone
    and currency. Computed in one SQL aggregate over the whole portfolio."""
    day = as_of or await tenant_today(session, actor.tenant_id)
    return await aging_report(session, actor.tenant_id, day, portfolio_id=portfolio_id,
                              product=product, zone=zone, currency=currency)
