"""Shared helpers of the OAuth client tests: tokens and bearer clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

GRANT = {"grant_type": "client_credentials"}


async def token_for(http: AsyncTestClient[Litestar], client_id: str, secret: str,
                    scope: str | None = None) -> str:
    data = {**GRANT, **({"scope": scope} if scope else {})}
    r = await http.post("/oauth/token", data=data, auth=(client_id, secret))
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@asynccontextmanager
async def bearer(http: AsyncTestClient[Litestar], token: str
                 ) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending ``token`` (on the test client's transport, which stays open)."""
    yield httpx.AsyncClient(transport=http._transport, base_url="http://testserver.local",
                             headers={"Authorization": f"Bearer {token}"})
