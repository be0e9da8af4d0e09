"""The bare reference app of ``bench_reads.py``: Litestar + msgspec reading one debtor row with
psycopg (a small pool of async connections), nothing else. Served by uvicorn:

    BARE_DATABASE_URL=postgresql://... uvicorn _bare_reads:app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from litestar import Litestar, get
from litestar.exceptions import NotFoundException


class DebtorRow(msgspec.Struct):
    id: int
    external_ref: str
    name: str
    country: str
    zone: str | None
    created_at: datetime


_pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
_SQL = ("SELECT id, external_ref, name, country, zone, created_at FROM debtors "
        "WHERE id = %s")


@get("/debtors/{debtor_id:int}")
async def debtor(debtor_id: int) -> DebtorRow:
    conn = await _pool.get()
    try:
        cur = await conn.execute(_SQL, (debtor_id,))
        row = await cur.fetchone()
    finally:
        _pool.put_nowait(conn)
    if row is None:
        raise NotFoundException()
    return DebtorRow(*row)


@asynccontextmanager
async def lifespan(_: Litestar) -> AsyncIterator[None]:
    url = os.environ["BARE_DATABASE_URL"]
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True)
             for _ in range(int(os.environ.get("BARE_POOL", "8")))]
    for c in conns:
        _pool.put_nowait(c)
    yield
    for c in conns:
        await c.close()


app = Litestar([debtor], lifespan=[lifespan], openapi_config=None, logging_config=None)
