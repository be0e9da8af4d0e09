"""RFC 7009 revocation and RFC 7662 introspection: client-authenticated, own tokens only
(revoke), own tenant only (introspect), revoked tokens fail at once."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from cartera.auth.models import RevokedToken
from tests.auth.helpers import bearer, token_for
from tests.conftest import TenantClient


def _token(tenant: TenantClient) -> str:
    return tenant.api.headers["authorization"][7:]


async def test_a_revoked_token_fails_at_once_and_is_kept_until_it_expires(
        app: Litestar, http: AsyncTestClient[Litestar], tenant: TenantClient) -> None:
    token = await token_for(http, tenant.client_id, tenant.client_secret)
    async with bearer(http, token) as api:
        assert (await api.get("/v1/debtors")).status_code == 200
        r = await http.post("/oauth/revoke", data={"token": token,
                                                   "token_type_hint": "access_token"},
                            auth=(tenant.client_id, tenant.client_secret))
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        assert (await api.get("/v1/debtors")).status_code == 401
    assert (await tenant.api.get("/v1/debtors")).status_code == 200  # other tokens stand
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.scalars(select(RevokedToken).where(
            RevokedToken.client_id == tenant.client_id))).all()
    assert len(rows) == 1 and rows[0].expires_at.timestamp() > 0
    again = await http.post("/oauth/revoke", data={"token": token},
                            auth=(tenant.client_id, tenant.client_secret))
    assert again.status_code == 200  # idempotent
    introspected = await http.post("/oauth/introspect", data={"token": token},
                                   auth=(tenant.client_id, tenant.client_secret))
    assert introspected.json() == {"active": False}


async def test_revoke_answers_200_for_garbage_and_refuses_another_clients_token(
        http: AsyncTestClient[Litestar], tenant: TenantClient, make_tenant: Any) -> None:
    auth = (tenant.client_id, tenant.client_secret)
    assert (await http.post("/oauth/revoke", data={"token": "garbage"}, auth=auth)
            ).status_code == 200
    other = await make_tenant()
    r = await http.post("/oauth/revoke", data={"token": _token(other)}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert (await other.api.get("/v1/debtors")).status_code == 200


@pytest.mark.parametrize("path", ["/oauth/revoke", "/oauth/introspect"])
async def test_client_authentication_and_form_battery(
        http: AsyncTestClient[Litestar], tenant: TenantClient, path: str) -> None:
    token = _token(tenant)
    r = await http.post(path, data={"token": token})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await http.post(path, data={"token": token}, auth=(tenant.client_id, "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    auth = (tenant.client_id, tenant.client_secret)
    r = await http.post(path, data={}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await http.post(path, data={"token": token, "token_type_hint": "id_token"}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await http.post(path, data={"token": token, "client_id": tenant.client_id,
                                    "client_secret": tenant.client_secret}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert (await tenant.api.get("/v1/debtors")).status_code == 200


async def test_introspection_is_active_for_the_tenants_own_tokens_only(
        app: Litestar, http: AsyncTestClient[Litestar], tenant: TenantClient,
        make_tenant: Any) -> None:
    auth = (tenant.client_id, tenant.client_secret)
    async with app.state.ctx.sessionmaker() as session:
        from cartera.auth.clients import create_client

        sibling, secret = await create_client(session, tenant.tenant_id, "sibling",
                                              ["reports:read"])
        await session.commit()
    sibling_token = await token_for(http, sibling.client_id, secret)
    r = await http.post("/oauth/introspect", data={"token": sibling_token}, auth=auth)
    body = r.json()
    assert r.status_code == 200 and body["active"] is True, body
    assert body["client_id"] == sibling.client_id and body["scope"] == "reports:read"
    assert body["tenant_id"] == tenant.tenant_id and body["token_type"] == "Bearer"
    assert body["iss"] == "http://testserver.local" and body["exp"] > body["iat"]
    assert body["jti"]
    other = await make_tenant()
    r = await http.post("/oauth/introspect", data={"token": _token(other)}, auth=auth)
    assert r.json() == {"active": False}
    for garbage in ("garbage", _token(tenant) + "x"):
        r = await http.post("/oauth/introspect", data={"token": garbage}, auth=auth)
        assert r.json() == {"active": False}
