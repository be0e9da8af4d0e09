"""Two delivery workers at once on PostgreSQL: each (event, endpoint) is delivered once."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter

import msgspec
import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from litestar import Litestar
from sqlalchemy import select

from cartera.db.engine import tenant_session
from cartera.events.delivery import DeliveryWorker, dispatch
from cartera.events.models import EventDelivery
from cartera.events.outbox import emit
from tests.conftest import TenantClient
from tests.events.test_delivery import endpoint

pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="concurrent claims need PostgreSQL (SQLite serialises writers)")

EVENTS = 300


async def test_two_workers_deliver_each_event_to_each_endpoint_once(
        app: Litestar, tenant: TenantClient) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(path: str) -> object:
        def handle(request: RecordedRequest) -> FakeResponse:
            with lock:
                seen.append((path, request.headers["webhook-id"]))
            return FakeResponse(status=200)
        return handle

    with FakeHTTPServer() as server:
        for path in ("/a", "/b"):
            server.route("POST", path, record(path))  # type: ignore[arg-type]
            await endpoint(tenant, f"{server.base_url}{path}")
        sessionmaker = app.state.ctx.sessionmaker
        async with tenant_session(sessionmaker, tenant.tenant_id) as session:
            for i in range(EVENTS):
                # a few debtors: ordering holds some back while others flow
                emit(session, tenant.tenant_id, "debtor.updated", "debtor", i % 7 + 1,
                     debtor_id=None if i % 2 else i % 7 + 1, data={"i": i})
            await session.commit()
        async with sessionmaker() as session:  # fan out first: both workers find work
            await dispatch(session)
            await session.commit()
        # the fake receiver is a thread per connection with a short listen queue
        async with DeliveryWorker(sessionmaker, batch=25, concurrency=4) as one, \
                DeliveryWorker(sessionmaker, batch=25, concurrency=4) as two:
            done = [0, 0]
            while sum(done) < 2 * EVENTS:
                rounds = await asyncio.gather(one.run_once(), two.run_once())
                assert any(rounds), "nothing due but deliveries are missing"
                done = [a + b for a, b in zip(done, rounds, strict=True)]
    assert sum(done) == 2 * EVENTS
    assert all(n > 0 for n in done), done  # both workers took a share
    counts = Counter(seen)
    assert len(counts) == 2 * EVENTS
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    async with sessionmaker() as session:
        rows = (await session.execute(select(EventDelivery.status, EventDelivery.attempts)
                                      .where(EventDelivery.tenant_id == tenant.tenant_id))
                ).all()
    assert Counter(map(tuple, rows)) == {("succeeded", 1): 2 * EVENTS}


async def test_two_pipelined_workers_keep_each_debtors_order(
        app: Litestar, tenant: TenantClient) -> None:
    """Two workers of two pipelines each run rounds at once: every delivery is sent once
    (one attempt each) and each debtor's events arrive in the order they were written."""
    arrived: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def handle(request: RecordedRequest) -> FakeResponse:
        body = msgspec.json.decode(request.body)
        with lock:
            arrived.append((body["data"]["debtor"], body["data"]["i"],
                            request.headers["webhook-id"]))
        return FakeResponse(status=204)

    debtors, each = 3, 40  # more of a debtor's events are due than are let through
    with FakeHTTPServer() as server:
        server.route("POST", "/hook", handle)  # type: ignore[arg-type]
        await endpoint(tenant, f"{server.base_url}/hook")
        sessionmaker = app.state.ctx.sessionmaker
        async with tenant_session(sessionmaker, tenant.tenant_id) as session:
            for i in range(debtors * each):
                debtor = i % debtors + 1
                emit(session, tenant.tenant_id, "debtor.updated", "debtor", debtor,
                     debtor_id=debtor, data={"debtor": debtor, "i": i})
            await session.commit()
        async with DeliveryWorker(sessionmaker, batch=6, concurrency=4) as one, \
                DeliveryWorker(sessionmaker, batch=6, concurrency=4) as two:
            done = 0
            while done < debtors * each:
                rounds = await asyncio.gather(
                    one.run_once(0), one.run_once(1), two.run_once(0), two.run_once(1))
                assert any(rounds), "nothing due but deliveries are missing"
                done += sum(rounds)
    assert done == debtors * each
    assert Counter(w for _, _, w in arrived).most_common(1)[0][1] == 1
    assert len(arrived) == debtors * each
    for debtor in range(1, debtors + 1):
        order = [i for d, i, _ in arrived if d == debtor]
        assert order == sorted(order), (debtor, order[:10])
    async with sessionmaker() as session:
        rows = (await session.execute(select(EventDelivery.status, EventDelivery.attempts)
                                      .where(EventDelivery.tenant_id == tenant.tenant_id))
                ).all()
    assert Counter(map(tuple, rows)) == {("succeeded", 1): debtors * each}
