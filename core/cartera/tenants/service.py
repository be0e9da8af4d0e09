"""Creating tenants (platform bootstrap)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import geo, money
from cartera.errors import Conflict, Invalid
from cartera.tenants.models import Tenant


async def create_tenant(session: AsyncSession, *, slug: str, name: str, country: str,
                        currency: str, timezone: str | None = None) -> Tenant:
    country = country.upper()
    if not geo.is_country(country):
        raise Invalid(f"{country!r} is not an ISO 3166-1 country", param="country")
    if not money.is_currency(currency):
        raise Invalid(f"{currency!r} is not an ISO 4217 currency", param="default_currency")
    tz = timezone or geo.default_timezone(country)
    if not geo.is_timezone(tz):
        raise Invalid(f"{tz!r} is not an IANA time zone", param="timezone")
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise Conflict(f"tenant {slug!r} exists", code="already_exists", param="slug")
    tenant = Tenant(slug=slug, name=name, country=country, default_currency=currency, timezone=tz)
    session.add(tenant)
    await session.flush()
    from cartera.segmentation.stages import create_default_stages

    create_default_stages(session, tenant.id)  # so that reading them never writes
    await session.flush()
    return tenant
