"""Fixtures of the PostgreSQL concurrency suite (helpers: :mod:`tests.concurrency`).

Every test in this directory is skipped unless the test database is PostgreSQL.

- ``pg_engine``: an engine of its own on the test database, pool of :data:`POOL` connections
  (apart from the app's), for :class:`~tests.concurrency.Backend` s and for reading committed
  state after a race.
- ``backends``: ``async with backends(tenant_id, n) as [a, b, ...]`` opens ``n`` backends,
  each one connection with a tenant-scoped session on it, and rolls back and closes them
  at the end (what a test committed stays).
- ``api_clients``: ``api_clients(tenant, n)`` gives ``n`` HTTP clients of the tenant over
  ASGI on the real app (its engine pools 32 connections), which may all be awaited at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cartera.db.engine import make_engine
from tests.concurrency import Backend
from tests.conftest import TenantClient

POOL = 16
"""Connections of ``pg_engine``: enough for the backends of a test and an observer."""


@pytest.fixture(autouse=True)
def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrency tests need PostgreSQL (set CARTERA_TEST_DATABASE_URL)")


@pytest.fixture(scope="session")
async def pg_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrency tests need PostgreSQL (set CARTERA_TEST_DATABASE_URL)")
    engine = make_engine(database_url, pool_size=POOL, max_overflow=0)
    yield engine
    await engine.dispose()


BackendsFactory = Callable[[int, int], AbstractAsyncContextManager[list[Backend]]]


@pytest.fixture
def backends(pg_engine: AsyncEngine) -> BackendsFactory:
    @asynccontextmanager
    async def open_backends(tenant_id: int, n: int) -> AsyncIterator[list[Backend]]:
        async with AsyncExitStack() as stack:
            opened = []
            for _ in range(n):
                conn = await stack.enter_async_context(pg_engine.connect())
                pid = int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)
                await conn.commit()
                session = await stack.enter_async_context(
                    AsyncSession(bind=conn, expire_on_commit=False))
                session.info["tenant_id"] = tenant_id
                opened.append(Backend(conn, session, pid))
            yield opened

    return open_backends


@pytest.fixture
async def api_clients(app: Litestar
                      ) -> AsyncIterator[Callable[[TenantClient, int], list[httpx.AsyncClient]]]:
    made: list[httpx.AsyncClient] = []

    def make(tenant: TenantClient, n: int) -> list[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app)
        clients = [httpx.AsyncClient(transport=transport, base_url="http://testserver.local",
                                     headers=dict(tenant.api.headers)) for _ in range(n)]
        made.extend(clients)
        return clients

    yield make
    for client in made:
        await client.aclose()
