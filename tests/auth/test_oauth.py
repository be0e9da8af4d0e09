"""OAuth 2.0 client credentials: both client authentication methods, RFC 6749 errors,
RFC 9068 tokens verifiable with the published JWKS, and bearer-token failures."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from cartera.auth.clients import create_client, grant_scopes
from cartera.auth.models import OAuthClient
from cartera.auth.tokens import TokenClient, TokenService
from cartera.errors import Invalid
from tests.conftest import TenantClient

GRANT = {"grant_type": "client_credentials"}


def _oauth_error(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == error
    assert r.headers["cache-control"] == "no-store"


async def test_token_via_basic_and_via_post(http: AsyncTestClient[Litestar],
                                            tenant: TenantClient) -> None:
    basic = await http.post("/oauth/token", data=GRANT,
                            auth=(tenant.client_id, tenant.client_secret))
    assert basic.status_code == 200, basic.text
    posted = await http.post("/oauth/token", data={**GRANT, "client_id": tenant.client_id,
                                                   "client_secret": tenant.client_secret})
    assert posted.status_code == 200, posted.text
    for r in (basic, posted):
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
        assert "portfolio:read" in body["scope"].split()
        assert r.headers["cache-control"] == "no-store"


async def test_both_authentication_methods_at_once_is_invalid_request(
    http: AsyncTestClient[Litestar], tenant: TenantClient,
) -> None:
    r = await http.post("/oauth/token", data={**GRANT, "client_id": tenant.client_id,
                                              "client_secret": tenant.client_secret},
                        auth=(tenant.client_id, tenant.client_secret))
    _oauth_error(r, 400, "invalid_request")


async def test_missing_grant_type_is_invalid_request(http: AsyncTestClient[Litestar],
                                                     tenant: TenantClient) -> None:
    r = await http.post("/oauth/token", data={"scope": "portfolio:read"},
                        auth=(tenant.client_id, tenant.client_secret))
    _oauth_error(r, 400, "invalid_request")


async def test_wrong_secret_and_unknown_client_are_invalid_client(
    http: AsyncTestClient[Litestar], tenant: TenantClient,
) -> None:
    wrong = await http.post("/oauth/token", data=GRANT, auth=(tenant.client_id, "nope"))
    _oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    unknown = await http.post("/oauth/token", data={**GRANT, "client_id": "cli_unknown",
                                                    "client_secret": "x"})
    _oauth_error(unknown, 401, "invalid_client")
    anonymous = await http.post("/oauth/token", data=GRANT)
    _oauth_error(anonymous, 401, "invalid_client")


async def test_disabled_client_is_rejected(app: Litestar, http: AsyncTestClient[Litestar],
                                           tenant: TenantClient) -> None:
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(OAuthClient).where(
            OAuthClient.client_id == tenant.client_id).values(disabled=True))
        await session.commit()
    r = await http.post("/oauth/token", data=GRANT, auth=(tenant.client_id,
                                                          tenant.client_secret))
    _oauth_error(r, 401, "invalid_client")


async def test_unsupported_grant_and_invalid_scope(http: AsyncTestClient[Litestar],
                                                   tenant: TenantClient) -> None:
    auth = (tenant.client_id, tenant.client_secret)
    grant = await http.post("/oauth/token", data={"grant_type": "password"}, auth=auth)
    _oauth_error(grant, 400, "unsupported_grant_type")
    scope = await http.post("/oauth/token", data={**GRANT, "scope": "portfolio:read admin"},
                            auth=auth)
    _oauth_error(scope, 400, "invalid_scope")
    narrowed = await http.post("/oauth/token", data={**GRANT, "scope": "reports:read"},
                               auth=auth)
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "reports:read"


async def test_token_is_an_rfc9068_jwt_verified_by_the_jwks(
    http: AsyncTestClient[Litestar], tenant: TenantClient,
) -> None:
    r = await http.post("/oauth/token", data=GRANT, auth=(tenant.client_id,
                                                          tenant.client_secret))
    access = r.json()["access_token"]
    jwks = (await http.get("/.well-known/jwks.json")).json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])
    token = jwt.decode(access, KeySet.import_key_set(jwks))
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims: dict[str, Any] = token.claims
    assert {"iss", "aud", "exp", "iat", "jti", "client_id", "sub", "scope",
            "tenant_id"} <= set(claims)
    assert claims["iss"] == "http://testserver.local"
    assert claims["client_id"] == tenant.client_id
    assert claims["tenant_id"] == tenant.tenant_id
    assert claims["exp"] > time.time() >= claims["iat"] - 5


async def test_expired_token_is_a_401_problem(app: Litestar, tenant: TenantClient) -> None:
    ctx = app.state.ctx
    expired = TokenService(ctx.tokens.issuer, ctx.tokens.keys, -120).issue(
        TokenClient(tenant.client_id, tenant.tenant_id, ["portfolio:read"]), None)
    r = await tenant.api.get("/v1/debtors",
                             headers={"Authorization": f"Bearer {expired['access_token']}"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_garbage_and_foreign_tokens_are_401(tenant: TenantClient) -> None:
    for token in ("garbage", "a.b.c", tenant.api.headers["authorization"][7:] + "x"):
        r = await tenant.api.get("/v1/debtors", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.json()["code"] == "invalid_token"


async def test_missing_token_is_401_with_challenge(http: AsyncTestClient[Litestar]) -> None:
    r = await http.get("/v1/debtors")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "missing_token"
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_missing_scope_is_403_insufficient_scope(
    app: Litestar, http: AsyncTestClient[Litestar], tenant: TenantClient,
) -> None:
    async with app.state.ctx.sessionmaker() as session:
        reader, secret = await create_client(session, tenant.tenant_id, "reader",
                                             ["portfolio:read"])
        await session.commit()
    token = (await http.post("/oauth/token", data=GRANT, auth=(reader.client_id, secret)))
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await http.get("/v1/debtors", headers=headers)).status_code == 200
    r = await http.post("/v1/debtors", headers=headers,
                        json={"external_ref": "X-1", "name": "X", "country": "PE"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "insufficient_scope"
    assert "insufficient_scope" in r.headers["www-authenticate"]
    listed = await tenant.api.get("/v1/debtors", params={"external_ref": "X-1"})
    assert listed.json()["data"] == []


async def test_a_client_granted_new_scopes_gets_them_in_its_next_token(
    app: Litestar, http: AsyncTestClient[Litestar], tenant: TenantClient,
) -> None:
    async with app.state.ctx.sessionmaker() as session:
        older, secret = await create_client(session, tenant.tenant_id, "older",
                                            ["portfolio:read"])
        await session.commit()

    async def promises() -> int:
        token = await http.post("/oauth/token", data=GRANT, auth=(older.client_id, secret))
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        return (await http.get("/v1/promises", headers=headers)).status_code

    assert await promises() == 403
    async with app.state.ctx.sessionmaker() as session:
        with pytest.raises(Invalid):
            await grant_scopes(session, older.client_id, ["negotiation:everything"])
        with pytest.raises(LookupError):
            await grant_scopes(session, "cli_nobody", ["negotiation:read"])
        granted = await grant_scopes(session, older.client_id,
                                     ["negotiation:read", "portfolio:read"])
        await session.commit()
    assert granted.scopes == "portfolio:read negotiation:read"
    assert await promises() == 200


async def test_authorization_server_metadata(http: AsyncTestClient[Litestar]) -> None:
    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == "http://testserver.local"
    assert meta["token_endpoint"] == "http://testserver.local/oauth/token"
    assert meta["jwks_uri"] == "http://testserver.local/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert meta["revocation_endpoint"] == "http://testserver.local/oauth/revoke"
    assert meta["introspection_endpoint"] == "http://testserver.local/oauth/introspect"
    assert {"portfolio:read", "portfolio:write", "reports:read"} <= set(
        meta["scopes_supported"])
