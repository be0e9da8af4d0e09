"""``private_key_jwt`` (RFC 7523): assertions checked against an inline JWKS or a JWKS URL
(fetched through the egress-aware client, cached), iss = sub = client id, aud = the token
endpoint URL, exp, and a jti that cannot be replayed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer
from cartera_sdk.testkit.fakeserver import json_response
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera.auth.assertions import ASSERTION_TYPE, JwksCache
from tests.conftest import PUBLIC_BASE_URL, TenantClient

AUDIENCE = f"{PUBLIC_BASE_URL}/oauth/token"


def _key() -> RSAKey:
    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"})
    key.ensure_kid()
    return key


def _assertion(key: RSAKey | ECKey, client_id: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": AUDIENCE, "exp": now + 120,
               "iat": now, "jti": secrets.token_hex(8), **claims}
    alg = "RS256" if isinstance(key, RSAKey) else "ES256"
    return jwt.encode({"alg": alg, "kid": key.kid}, payload, key)


def _form(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, **extra}


async def _register(tenant: TenantClient, **keys: Any) -> str:
    r = await tenant.api.post("/v1/clients", json={"name": "bank", "scopes": ["portfolio:read"],
                                                   "auth_method": "private_key_jwt", **keys})
    assert r.status_code == 201, r.text
    assert r.json()["client_secret"] is None
    client_id: str = r.json()["client_id"]
    return client_id


@pytest.fixture
def jwks_server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as server:
        yield server


async def test_inline_jwks_issues_a_token_and_refuses_a_replay(
        http: AsyncTestClient[Litestar], tenant: TenantClient) -> None:
    key = _key()
    client_id = await _register(tenant, jwks={"keys": [key.as_dict(private=False)]})
    assertion = _assertion(key, client_id)
    r = await http.post("/oauth/token", data=_form(assertion))
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "portfolio:read"
    replay = await http.post("/oauth/token", data=_form(assertion))
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    with_id = await http.post("/oauth/token",
                              data=_form(_assertion(key, client_id), client_id=client_id))
    assert with_id.status_code == 200, with_id.text


@pytest.mark.parametrize("claims", [
    {"aud": "https://elsewhere.example.com/oauth/token"},
    {"aud": "http://testserver.local/oauth/token"},  # the issuer's, not the public URL
    {"iss": "cli_someone_else"},
    {"exp": int(time.time()) - 600},
    {"exp": int(time.time()) + 7200},
    {"jti": None},
    {"exp": None},
])
async def test_bad_assertions_are_invalid_client(http: AsyncTestClient[Litestar],
                                                 tenant: TenantClient,
                                                 claims: dict[str, Any]) -> None:
    key = _key()
    client_id = await _register(tenant, jwks={"keys": [key.as_dict(private=False)]})
    payload = {k: v for k, v in claims.items() if v is not None}
    assertion = _assertion(key, client_id, **payload)
    if None in claims.values():
        dropped = [k for k, v in claims.items() if v is None]
        now = int(time.time())
        full = {"iss": client_id, "sub": client_id, "aud": AUDIENCE, "exp": now + 120,
                "jti": "j1"}
        assertion = jwt.encode({"alg": "RS256", "kid": key.kid},
                               {k: v for k, v in full.items() if k not in dropped}, key)
    r = await http.post("/oauth/token", data=_form(assertion))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


async def test_another_key_a_secret_client_and_a_wrong_type_are_refused(
        http: AsyncTestClient[Litestar], tenant: TenantClient) -> None:
    key = _key()
    client_id = await _register(tenant, jwks={"keys": [key.as_dict(private=False)]})
    r = await http.post("/oauth/token", data=_form(_assertion(_key(), client_id)))
    assert r.status_code == 401
    r = await http.post("/oauth/token", data=_form(_assertion(key, tenant.client_id)))
    assert r.status_code == 401  # a client_secret client cannot use assertions
    r = await http.post("/oauth/token", data={**_form(_assertion(key, client_id)),
                                              "client_assertion_type": "urn:other"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await http.post("/oauth/token", data=_form(_assertion(key, client_id)),
                        auth=(tenant.client_id, tenant.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await http.post("/oauth/token", data=_form("not-a-jwt"))
    assert r.status_code == 401


async def test_jwks_uri_is_fetched_cached_and_refetched_for_a_new_key(
        app: Litestar, http: AsyncTestClient[Litestar], tenant: TenantClient,
        jwks_server: FakeHTTPServer) -> None:
    first, second = _key(), ECKey.generate_key("P-256", parameters={"alg": "ES256"})
    second.ensure_kid()
    jwks_server.route("GET", "/jwks.json",
                      json_response({"keys": [first.as_dict(private=False)]}))
    client_id = await _register(tenant, jwks_uri=f"{jwks_server.base_url}/jwks.json")
    for _ in range(2):
        r = await http.post("/oauth/token", data=_form(_assertion(first, client_id)))
        assert r.status_code == 200, r.text
    assert len(jwks_server.requests_to("GET", "/jwks.json")) == 1  # cached
    both = json_response({"keys": [first.as_dict(private=False),
                                   second.as_dict(private=False)]})
    jwks_server.route("GET", "/jwks.json", both)
    r = await http.post("/oauth/token", data=_form(_assertion(second, client_id)))
    # a key id the cached set lacks: refetched, but not more than every 10 s
    assert r.status_code == 401
    assert len(jwks_server.requests_to("GET", "/jwks.json")) == 1
    ctx = app.state.ctx
    shared, ctx.jwks_cache = ctx.jwks_cache, JwksCache(refetch_seconds=0)
    try:
        jwks_server.route("GET", "/jwks.json",
                          json_response({"keys": [first.as_dict(private=False)]}))
        r = await http.post("/oauth/token", data=_form(_assertion(first, client_id)))
        assert r.status_code == 200, r.text
        jwks_server.route("GET", "/jwks.json", both)  # the client adds a key
        r = await http.post("/oauth/token", data=_form(_assertion(second, client_id)))
        assert r.status_code == 200, r.text
        assert len(jwks_server.requests_to("GET", "/jwks.json")) == 3
    finally:
        ctx.jwks_cache = shared


async def test_a_plain_http_jwks_uri_needs_the_egress_allow_list(
        app: Litestar, http: AsyncTestClient[Litestar], tenant: TenantClient,
        jwks_server: FakeHTTPServer) -> None:
    key = _key()
    jwks_server.route("GET", "/jwks.json", json_response({"keys": [key.as_dict(private=False)]}))
    url = f"{jwks_server.base_url}/jwks.json".replace("127.0.0.1", "127.0.0.2")
    r = await tenant.api.post("/v1/clients", json={
        "name": "bank", "auth_method": "private_key_jwt", "jwks_uri": url})
    assert r.status_code == 422 and r.json()["param"] == "jwks_uri", r.text


async def test_revoke_and_introspect_accept_assertions(http: AsyncTestClient[Litestar],
                                                       tenant: TenantClient) -> None:
    key = _key()
    client_id = await _register(tenant, jwks={"keys": [key.as_dict(private=False)]})
    token = (await http.post("/oauth/token", data=_form(_assertion(key, client_id)))
             ).json()["access_token"]
    form = {"token": token, "client_assertion_type": ASSERTION_TYPE}
    r = await http.post("/oauth/introspect",
                        data={**form, "client_assertion": _assertion(key, client_id)})
    assert r.json()["active"] is True
    r = await http.post("/oauth/revoke",
                        data={**form, "client_assertion": _assertion(key, client_id)})
    assert r.status_code == 200
    r = await http.post("/oauth/introspect",
                        data={**form, "client_assertion": _assertion(key, client_id)})
    assert r.json() == {"active": False}
