"""Shared fixtures: one migrated database per test session (SQLite by default, PostgreSQL
when ``CARTERA_TEST_DATABASE_URL`` is set), the real app, and authenticated API clients.

Each test makes its own tenant, so tests never see each other's data and need no cleanup.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

os.environ.setdefault("CARTERA_MASTER_KEY",
                      base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
os.environ.setdefault("CARTERA_LOG_LEVEL", "WARNING")
# Every installed plugin except the shipped country packs: they judge by the real clock (a
# PE contact at 21:00 Lima is deferred) and the suite's messaging tests run at whatever
# hour CI does. Their own tests (plugins/compliance_*, tests/compliance) build hosts with them.
os.environ.setdefault("CARTERA_PLUGINS", ",".join(
    ep.name for ep in entry_points(group="cartera")
    if not ep.value.startswith("cartera_compliance_")))

from cartera.api.app import create_app
from cartera.auth.clients import create_client
from cartera.db import migrate
from cartera.jobs.runner import InProcessRunner
from cartera.settings import Settings, normalise_database_url
from cartera.tenants.service import create_tenant

_counter = itertools.count(1)
TEST_EGRESS_ALLOW = "127.0.0.1,::1,localhost"
"""The fake providers of the tests listen on loopback over http."""
PUBLIC_BASE_URL = "https://cartera.example.com"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    configured = os.environ.get("CARTERA_TEST_DATABASE_URL")
    if configured:
        url = normalise_database_url(configured)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    os.environ["CARTERA_HOME"] = str(tmp_path_factory.mktemp("home"))
    # The public URL differs from the host requests arrive at, as behind a reverse proxy.
    return Settings(database_url=database_url, issuer="http://testserver.local",
                    public_base_url=PUBLIC_BASE_URL,
                    log_level="WARNING", jobs_inline=True, plugin_timeout_seconds=1.0,
                    egress_allow=TEST_EGRESS_ALLOW,
                    # one address makes every test's tokens: tests/api/test_rate_limits.py
                    # checks the limits on an app of its own
                    rate_limit_token="100000/minute", rate_limit_webhooks="100000/minute",
                    rate_limit_expensive="100000/minute")


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    # No background poller: jobs run when a test calls ``run_jobs``, so tests decide when.
    return create_app(settings, runner_factory=lambda s, sessionmaker: InProcessRunner(
        sessionmaker, background=False))


@pytest.fixture(scope="session")
async def http(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        yield client


@dataclass
class TenantClient:
    """A tenant with an OAuth client; ``api`` sends its bearer token."""

    tenant_id: int
    slug: str
    client_id: str
    client_secret: str
    api: httpx.AsyncClient


async def _make_tenant(app: Litestar, http: AsyncTestClient[Litestar], *, country: str = "PE",
                       currency: str = "PEN", scopes: list[str] | None = None) -> TenantClient:
    slug = f"t{next(_counter)}-{secrets.token_hex(3)}"
    async with app.state.ctx.sessionmaker() as session:
        tenant = await create_tenant(session, slug=slug, name=slug, country=country,
                                     currency=currency)
        client, secret = await create_client(session, tenant.id, "tests", scopes)
        await session.commit()
    response = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(client.client_id, secret))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    api = httpx.AsyncClient(transport=http._transport, base_url="http://testserver.local",
                            headers={"Authorization": f"Bearer {token}"})
    return TenantClient(tenant.id, slug, client.client_id, secret, api)


@pytest.fixture
async def tenant(app: Litestar, http: AsyncTestClient[Litestar]) -> TenantClient:
    return await _make_tenant(app, http)


@pytest.fixture
def make_tenant(app: Litestar, http: AsyncTestClient[Litestar]
                ) -> Callable[..., Awaitable[TenantClient]]:
    async def make(**kwargs: Any) -> TenantClient:
        return await _make_tenant(app, http, **kwargs)

    return make


@pytest.fixture
def run_jobs(app: Litestar) -> Callable[[], Awaitable[int]]:
    """Run due jobs now, and wait for any the app's background poller already took."""
    from sqlalchemy import func, or_, select

    from cartera import clock
    from cartera.jobs.models import Job

    # Only this test's jobs are waited for: on PostgreSQL the database is shared by the whole
    # session, and a test of another runner (procrastinate) may leave a job of its own behind.
    since = clock.now()

    async def run() -> int:
        ran = 0
        for _ in range(200):
            ran += await app.state.ctx.jobs.run_pending()
            async with app.state.ctx.sessionmaker() as session:
                busy = await session.scalar(select(func.count()).select_from(Job).where(
                    Job.created_at >= since,
                    or_(Job.status == "running",
                        (Job.status == "queued")
                        & or_(Job.run_after.is_(None), Job.run_after <= clock.now()))))
            if not busy:
                return ran
            await asyncio.sleep(0.05)
        raise AssertionError("jobs still running after 10 s")

    return run


FIXTURES = Path(__file__).parent / "fixtures"


async def hook_path(http: AsyncTestClient[Litestar], integration_id: int) -> str:
    """The path of an integration's public webhook route (``/v1/hooks/{token}``)."""
    from cartera.integrations.models import Integration
    from cartera.integrations.service import webhook_url

    async with http.app.state.ctx.sessionmaker() as session:
        integration = await session.get(Integration, integration_id)
    assert integration is not None
    return webhook_url("", integration)
