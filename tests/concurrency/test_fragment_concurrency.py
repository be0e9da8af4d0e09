"""Expiring the parts of a long inbound SMS records the message once, however many
housekeeping runs race for it (each on its own connection)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar import Litestar
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cartera import clock
from cartera.integrations.models import WebhookEvent
from cartera.messaging.inbound import FRAGMENT_WINDOW, expire_fragments
from cartera.messaging.models import Interaction
from tests.conftest import TenantClient, hook_path
from tests.integrations.test_integrations import create
from tests.integrations.test_query_webhooks import signed


async def test_racing_expiries_record_an_incomplete_reply_once(
    tenant: TenantClient, app: Litestar, http: Any, pg_engine: AsyncEngine,
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    for index in (1, 2):
        params = signed(msisdn="5491100000001", to="CARTERA", messageId=f"race-{index}",
                        text=f"parte {index} ", **{"concat-ref": "31", "concat-part": str(index),
                                                  "concat-total": "4"})
        assert (await http.get(url, params=params)).status_code == 200
    await run_jobs()
    sessions = async_sessionmaker(pg_engine, expire_on_commit=False)
    async with sessions() as session:
        await session.execute(update(WebhookEvent).where(
            WebhookEvent.integration_id == integ["id"]).values(
            received_at=clock.now() - FRAGMENT_WINDOW - timedelta(minutes=5)))
        await session.commit()

    async def expire() -> int:
        async with sessions() as session:
            recorded = await expire_fragments(session, clock.now(), {})
            await session.commit()
            return recorded

    results = await asyncio.gather(*(expire() for _ in range(6)))
    assert sum(results) >= 1
    async with sessions() as session:
        inbound = await session.scalar(select(func.count()).select_from(Interaction).where(
            Interaction.integration_id == integ["id"], Interaction.direction == "inbound"))
        reasons = (await session.scalars(select(WebhookEvent.reason).where(
            WebhookEvent.integration_id == integ["id"]))).all()
    assert inbound == 1
    assert list(reasons) == ["fragment_expired", "fragment_expired"]
