"""Payment links' housekeeping, about once a minute (``every_minute``).

* open links past their expiry become ``expired`` (one UPDATE over a partial index);
* open links with a provider-side payment not checked for a day are re-fetched
  (:func:`cartera.payments.reconcile.recover_open_links`): a lost approval webhook is
  recovered within a day. Each link is re-fetched at most daily, so most minutes find none.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.jobs.registry import every_minute
from cartera.payments.links import expire_links
from cartera.payments.reconcile import recover_open_links


@every_minute
async def payment_link_housekeeping(sessionmaker: async_sessionmaker[AsyncSession],
                                    runner: Any) -> None:
    """Expire due links, then recover lost payments; idempotent."""
    from cartera.plugins.registry import current_host

    async with sessionmaker() as session:
        await expire_links(session, clock.now())
        await session.commit()
    await recover_open_links(sessionmaker, current_host())
