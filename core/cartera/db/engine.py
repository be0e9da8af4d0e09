"""Engines and sessions.

A session opened with :func:`tenant_session` only ever sees its tenant's rows: every ORM
SELECT gets ``tenant_id = :tenant`` added (``with_loader_criteria``). Hand-written SQL must
still filter on ``tenant_id`` itself.

A session whose ``info`` carries :data:`STATEMENT_TIMEOUT_MS` (API requests do) bounds each
of its statements on PostgreSQL: every transaction it begins sets ``statement_timeout``
locally, so the pooled connection goes back unchanged and workers are never bound by it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from cartera.db.base import TenantScoped

_IDLE = 0
"""``psycopg.pq.TransactionStatus.IDLE``: no transaction open on the connection."""


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys, WAL and a busy timeout.

    Bound parameters (debtors' personal data, sealed secrets) never appear in SQLAlchemy's
    logs or in the text of its errors (``hide_parameters``)."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # Connections beyond the pool are opened and closed per checkout (a TCP connect, auth
    # and a name lookup in a thread): size the pool for the concurrency a process serves.
    kwargs.setdefault("pool_size", int(os.environ.get("CARTERA_DB_POOL_SIZE", "32")))
    kwargs.setdefault("max_overflow", 8)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


READ_METHODS = frozenset({"GET", "HEAD"})
"""The HTTP methods served by :func:`make_read_engine`'s connections."""


def make_read_engine(url: str, statement_timeout_ms: int) -> AsyncEngine | None:
    """PostgreSQL: the engine of API reads (``GET``), None on SQLite.

    Its connections are the API's alone, so they carry the statement timeout from the
    connection's start and are read-only for the database (``default_transaction_read_only``:
    a read that tried to write fails instead of writing). They run in autocommit: a read
    of READ COMMITTED sees one snapshot per statement anyway, and without the transaction
    a read is one round trip per statement (no BEGIN, SET LOCAL, COMMIT). No pre-ping
    either (another round trip per request): after a database restart the first read of
    each stale connection fails (500) and invalidates the pool, which reconnects.

    Its pool is sized by ``CARTERA_DB_READ_POOL_SIZE`` (default: ``CARTERA_DB_POOL_SIZE``,
    32): a process may hold both pools' connections at once under mixed load."""
    if url.startswith("sqlite"):
        return None
    options = read_options(statement_timeout_ms)
    size = os.environ.get("CARTERA_DB_READ_POOL_SIZE") or os.environ.get(
        "CARTERA_DB_POOL_SIZE", "32")
    return make_engine(url, pool_pre_ping=False, isolation_level="AUTOCOMMIT",
                       connect_args={"options": options}, pool_size=int(size))


def read_options(statement_timeout_ms: int) -> str:
    """The libpq ``options`` of a read connection: the statement timeout and read-only."""
    return (f"-c statement_timeout={int(statement_timeout_ms)} "
            "-c default_transaction_read_only=on")


class ReadPool:
    """Plain psycopg connections for the hottest reads (``GET /v1/debtors/{id}``, the
    common ``GET /v1/debtors``), with
    what :func:`make_read_engine`'s have (autocommit, read-only, the statement timeout),
    without SQLAlchemy in between: a checkout is a queue get, a statement is psycopg's own
    execute (prepared server-side after a few uses).

    At most ``size`` connections, opened on demand. A connection that fails (or that a
    statement left in a transaction) is closed instead of being put back, so after a
    database restart only the reads that met a stale connection fail."""

    def __init__(self, url: str, statement_timeout_ms: int, size: int) -> None:
        self._conninfo = "postgresql://" + url.split("://", 1)[1]
        self._options = read_options(statement_timeout_ms)
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        async with self._slots:  # at most `size` in use, so at most `size` open
            if self._closed:
                raise RuntimeError("the read pool is closed")
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except BaseException:
                await self._discard(conn)
                raise
            if conn.closed or conn.info.transaction_status != _IDLE or self._closed:
                await self._discard(conn)
            else:
                self._idle.append(conn)

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                     options=self._options)

    @staticmethod
    async def _discard(conn: Any) -> None:
        with suppress(Exception):  # a broken connection may fail to close
            await conn.close()

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._discard(self._idle.pop())


def make_read_pool(url: str, statement_timeout_ms: int) -> ReadPool | None:
    """PostgreSQL: a :class:`ReadPool` of ``CARTERA_DB_FAST_READ_POOL_SIZE`` connections
    (default 8); None on SQLite."""
    if url.startswith("sqlite"):
        return None
    return ReadPool(url, statement_timeout_ms,
                    int(os.environ.get("CARTERA_DB_FAST_READ_POOL_SIZE", "8")))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


STATEMENT_TIMEOUT_MS = "statement_timeout_ms"


@event.listens_for(Session, "after_begin")
def _bound_statements(session: Session, _transaction: Any, connection: Any) -> None:
    timeout = session.info.get(STATEMENT_TIMEOUT_MS)
    if timeout and connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout)}")


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get("tenant_id")
    if tenant_id is None or not state.is_select:
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int
) -> AsyncIterator[AsyncSession]:
    """A session scoped to one tenant, committed on success and rolled back on error."""
    async with sessionmaker() as session:
        session.info["tenant_id"] = tenant_id
        async with session.begin():
            yield session
