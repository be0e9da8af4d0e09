"""Every API statement has a timeout on PostgreSQL (503 ``statement_timeout``), and workers'
sessions are not bound by it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cartera.api.app import create_app
from cartera.db.engine import STATEMENT_TIMEOUT_MS
from cartera.jobs.runner import InProcessRunner
from cartera.settings import Settings, install_settings
from tests.api.test_bad_input import DEBTOR, assert_problem
from tests.conftest import TenantClient, _make_tenant

pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL (statement_timeout)")


@pytest.fixture
async def impatient(
    settings: Settings,
) -> AsyncIterator[tuple[Litestar, AsyncTestClient[Litestar]]]:
    """An app whose API statements may take 300 ms."""
    fast = dataclasses.replace(settings, statement_timeout_ms=300)
    app = create_app(fast, runner_factory=lambda s, sm: InProcessRunner(sm, background=False))
    try:
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            yield app, client
    finally:
        install_settings(settings)


async def test_a_statement_held_past_the_timeout_is_503(
    impatient: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, client = impatient
    tenant: TenantClient = await _make_tenant(app, client)
    assert (await tenant.api.post("/v1/debtors", json=DEBTOR)).status_code == 201
    async with app.state.ctx.engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE debtors IN ACCESS EXCLUSIVE MODE"))
        started = asyncio.get_running_loop().time()
        r = await asyncio.wait_for(tenant.api.get("/v1/debtors"), timeout=10)
        waited = asyncio.get_running_loop().time() - started
        await blocker.rollback()
    assert_problem(r, 503, "statement_timeout")
    assert r.headers["retry-after"]
    assert waited < 5, waited
    assert (await tenant.api.get("/v1/debtors")).status_code == 200  # the pool is healthy


async def test_a_plain_read_held_past_the_timeout_is_503(
    impatient: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    """The reads on the plain read pool (a debtor, the common list) answer a statement
    timeout as every other read does: 503, not 500."""
    app, client = impatient
    tenant: TenantClient = await _make_tenant(app, client)
    made = await tenant.api.post("/v1/debtors", json=DEBTOR)
    assert made.status_code == 201
    for path in (f"/v1/debtors/{made.json()['id']}", "/v1/debtors?zone=Lima&dpd_min=30"):
        async with app.state.ctx.engine.connect() as blocker:
            await blocker.execute(text("LOCK TABLE debtors IN ACCESS EXCLUSIVE MODE"))
            r = await asyncio.wait_for(tenant.api.get(path), timeout=10)
            await blocker.rollback()
        assert_problem(r, 503, "statement_timeout")
        assert r.headers["retry-after"]
        assert (await tenant.api.get(path)).status_code == 200


async def test_a_slow_query_is_cancelled(
    impatient: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    """The bound is on each statement of a bounded session, whatever makes it slow."""
    app, _ = impatient
    started = asyncio.get_running_loop().time()
    async with app.state.ctx.sessionmaker() as session:
        session.info[STATEMENT_TIMEOUT_MS] = 300
        with pytest.raises(DBAPIError) as raised:
            await session.execute(text("SELECT pg_sleep(3)"))
    assert getattr(raised.value.orig, "sqlstate", None) == "57014"
    assert asyncio.get_running_loop().time() - started < 2


async def test_worker_sessions_have_no_statement_timeout(
    impatient: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, _ = impatient
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(text("SHOW statement_timeout")) == "0"
        assert await session.scalar(text("SELECT pg_sleep(0.5)::text")) == ""
