"""Offers' housekeeping, about once a minute: live offers past their expiry become
``expired`` (one UPDATE over ``ix_offers_status_expires``), which frees the debtor for a new
offer. Reads already show them expired; a payment made before the expiry still applies one
(:func:`cartera.offers.service.apply_paid_offers` counts payments up to it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.jobs.registry import every_minute
from cartera.offers.service import expire_offers


@every_minute
async def offer_housekeeping(sessionmaker: async_sessionmaker[AsyncSession],
                             runner: Any) -> None:
    """Expire due offers; idempotent."""
    async with sessionmaker() as session:
        await expire_offers(session, clock.now())
        await session.commit()
