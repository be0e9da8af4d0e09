"""What a running app holds (engine, sessions, tokens, jobs) and per-request dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cartera.auth.assertions import JwksCache
from cartera.auth.tokens import ClientPrincipal, TokenService
from cartera.db.engine import READ_METHODS, STATEMENT_TIMEOUT_MS, ReadPool
from cartera.errors import Unauthorized
from cartera.settings import Settings

if TYPE_CHECKING:
    from cartera.jobs.runner import JobRunner


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tokens: TokenService
    jobs: JobRunner
    jwks_cache: JwksCache = field(default_factory=JwksCache)
    """Clients' ``jwks_uri`` key sets (``private_key_jwt``)."""
    read_sessionmaker: async_sessionmaker[AsyncSession] | None = None
    """Sessions of ``GET`` requests (:func:`cartera.db.engine.make_read_engine`), when the
    database has them (PostgreSQL)."""
    read_pool: ReadPool | None = None
    """Plain connections of the hottest reads (:class:`cartera.db.engine.ReadPool`), when the
    database has them (PostgreSQL)."""


@dataclass(frozen=True)
class Actor:
    """Who is making a change, for the audit trail."""

    tenant_id: int
    client_id: str | None
    request_id: str | None

    @property
    def name(self) -> str:
        return f"client:{self.client_id}" if self.client_id else "system"


def app_context(request: Request[Any, Any, Any]) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def principal_of(request: Request[Any, Any, Any]) -> ClientPrincipal:
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized("a bearer access token is required", code="missing_token")
    assert isinstance(principal, ClientPrincipal)
    return principal


async def provide_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """A tenant-scoped session for the caller; commits when the handler returns. Each of its
    statements is bounded by ``statement_timeout_ms`` (PostgreSQL). A ``GET`` on PostgreSQL
    gets a session of the read engine instead (read-only, nothing to commit)."""
    async with request_session(request) as session:
        yield session


@asynccontextmanager
async def request_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """The session :func:`provide_session` gives, for a handler that opens it only when it
    needs one."""
    principal = principal_of(request)
    ctx = app_context(request)
    if ctx.read_sessionmaker is not None and request.scope["method"] in READ_METHODS:
        # Read-only autocommit connections with the timeout set at connect: one round trip
        # per statement, and a write fails in the database.
        async with ctx.read_sessionmaker() as session:
            session.info["tenant_id"] = principal.tenant_id
            yield session
        return
    async with ctx.sessionmaker() as session:
        session.info["tenant_id"] = principal.tenant_id
        session.info[STATEMENT_TIMEOUT_MS] = ctx.settings.statement_timeout_ms
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    principal = principal_of(request)
    return Actor(
        tenant_id=principal.tenant_id,
        client_id=principal.client_id,
        request_id=request.scope.get("state", {}).get("request_id"),
    )
