"""Retention of events and their delivery log; a crashed worker's claim is sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cartera_sdk.testkit import FakeHTTPServer
from litestar import Litestar
from sqlalchemy import func, select, update

from cartera import clock
from cartera.events import jobs
from cartera.events.delivery import LEASE, DeliveryWorker, claim, dispatch, record
from cartera.events.models import DeliveryAttempt, EventDelivery, OutboxEvent
from tests.conftest import TenantClient
from tests.events.test_delivery import deliver, endpoint, receiver  # noqa: F401
from tests.events.test_events_api import new_debtor


async def _counts(app: Litestar, tenant_id: int) -> list[int]:
    """The tenant's events, deliveries and attempts."""
    async with app.state.ctx.sessionmaker() as session:
        return [int(await session.scalar(select(func.count()).select_from(model)
                                         .where(model.tenant_id == tenant_id)) or 0)
                for model in (OutboxEvent, EventDelivery, DeliveryAttempt)]


async def test_the_retention_job_deletes_old_events_with_their_deliveries_and_log(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    await endpoint(tenant, f"{receiver.base_url}/hook", ["debtor.created"])
    for i in range(3):
        await new_debtor(tenant, f"D-{i}")
    assert await deliver(app) == 3
    sessionmaker = app.state.ctx.sessionmaker
    async with sessionmaker() as session:  # these three are now past the retention period
        await session.execute(update(OutboxEvent).where(
            OutboxEvent.tenant_id == tenant.tenant_id, OutboxEvent.type == "debtor.created")
            .values(created_at=clock.now() - jobs.RETENTION - timedelta(hours=1)))
        await session.commit()
    await new_debtor(tenant, "D-new")
    assert await deliver(app) == 1
    assert await _counts(app, tenant.tenant_id) == [4, 4, 4]
    monkeypatch.setattr(jobs, "PURGE_BATCH", 2)  # one run goes on until none is left
    await jobs.purge_old_events(sessionmaker, None)
    assert await _counts(app, tenant.tenant_id) == [1, 1, 1]
    async with sessionmaker() as session:
        kept = (await session.execute(
            select(OutboxEvent.resource_id, DeliveryAttempt.succeeded)
            .join(EventDelivery, EventDelivery.event_seq == OutboxEvent.seq)
            .join(DeliveryAttempt, DeliveryAttempt.delivery_id == EventDelivery.id)
            .where(OutboxEvent.tenant_id == tenant.tenant_id))).all()
    assert len(kept) == 1 and kept[0].succeeded


async def test_a_crashed_workers_claim_is_sent_again_after_its_lease(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:  # noqa: F811
    await endpoint(tenant, f"{receiver.base_url}/hook", ["debtor.created"])
    await new_debtor(tenant)
    sessionmaker = app.state.ctx.sessionmaker
    async with sessionmaker() as session:
        await dispatch(session)
        await session.commit()
    async with sessionmaker() as session:
        (taken,) = await claim(session, 10)
        await session.commit()
    async with DeliveryWorker(sessionmaker) as worker:
        (lost,) = await worker.send_all([taken])  # sent, then the worker died unrecorded
        assert lost.succeeded
        assert await worker.drain(5) == 0  # leased: nobody sends it meanwhile
        with time_machine.travel(datetime.now(UTC) + LEASE + timedelta(seconds=5)):
            assert await worker.drain(5) == 1
    async with sessionmaker() as session:  # the dead worker's record, arriving late
        await record(session, [lost])
        await session.commit()
        delivery = (await session.execute(select(EventDelivery.status, EventDelivery.attempts)
                    .where(EventDelivery.id == taken.delivery_id))).one()
        log = (await session.scalars(select(DeliveryAttempt.attempt).where(
            DeliveryAttempt.delivery_id == taken.delivery_id)
            .order_by(DeliveryAttempt.attempt))).all()
    assert tuple(delivery) == ("succeeded", 2)  # the late record moved nothing
    assert list(log) == [1, 2]  # but both attempts are in the log
    first, again = receiver.requests_to("POST", "/hook")
    assert first.headers["webhook-id"] == again.headers["webhook-id"]  # at least once
