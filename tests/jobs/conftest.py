"""Job tests: their own engine and tenant, and test-only job kinds."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.jobs.models import Job
from cartera.jobs.registry import JobContext, job
from cartera.jobs.runner import PermanentError
from cartera.tenants.service import create_tenant

CALLS: dict[int, int] = {}
"""How many times a test handler ran, per job id."""


@job("test.echo")
async def echo(ctx: JobContext) -> dict[str, Any]:
    CALLS[ctx.job_id] = CALLS.get(ctx.job_id, 0) + 1
    await ctx.progress(5, 10)
    return {"echo": ctx.payload.get("value")}


@job("test.boom")
async def boom(ctx: JobContext) -> dict[str, Any]:
    CALLS[ctx.job_id] = CALLS.get(ctx.job_id, 0) + 1
    raise RuntimeError("kaboom")


@job("test.bad_sql")
async def bad_sql(ctx: JobContext) -> dict[str, Any]:
    """Fails in the database with personal data bound as a parameter."""
    async with ctx.sessionmaker() as session:
        await session.execute(text("SELECT * FROM debtors WHERE national_id = :n AND nope = 1"),
                              {"n": PERSONAL})
    return {}


PERSONAL = "DNI-40-123-456"


@job("test.flaky")
async def flaky(ctx: JobContext) -> dict[str, Any]:
    CALLS[ctx.job_id] = CALLS.get(ctx.job_id, 0) + 1
    if CALLS[ctx.job_id] == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": CALLS[ctx.job_id]}


@job("test.permanent")
async def permanent(ctx: JobContext) -> dict[str, Any]:
    CALLS[ctx.job_id] = CALLS.get(ctx.job_id, 0) + 1
    raise PermanentError("can never work")


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def tenant_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    slug = f"jobs-{secrets.token_hex(4)}"
    async with sessionmaker() as session:
        tenant = await create_tenant(session, slug=slug, name=slug, country="PE",
                                     currency="PEN")
        await session.commit()
        return tenant.id


async def load(sessionmaker: async_sessionmaker[AsyncSession], job_id: int) -> Job:
    async with sessionmaker() as session:
        found = await session.get(Job, job_id)
        assert found is not None
        return found
