"""``/v1/clients``: create (secret once, read-only default, no escalation), list, get,
disable (tokens fail at once), rotate (grace period), delete, and the bad-input battery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera import clock
from cartera.auth.scopes import SCOPES
from tests.api.test_bad_input import assert_problem
from tests.auth.helpers import GRANT, bearer, token_for
from tests.conftest import TenantClient

READS = sorted(s for s in SCOPES if s.endswith(":read"))


async def _create(tenant: TenantClient, **body: Any) -> dict[str, Any]:
    r = await tenant.api.post("/v1/clients", json={"name": "isv", **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_create_shows_the_secret_once_and_defaults_to_read_only(
        http: AsyncTestClient[Litestar], tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/clients", json={"name": "isv"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/v1/clients/{created['client_id']}"
    assert r.headers["cache-control"] == "no-store"
    assert sorted(created["scopes"]) == READS
    assert created["auth_method"] == "client_secret" and created["client_secret"]
    fetched = (await tenant.api.get(f"/v1/clients/{created['client_id']}")).json()
    assert "client_secret" not in fetched and fetched["scopes"] == created["scopes"]
    listed = (await tenant.api.get("/v1/clients")).json()["data"]
    assert {c["client_id"] for c in listed} == {tenant.client_id, created["client_id"]}
    assert all("client_secret" not in c for c in listed)
    token = await token_for(http, created["client_id"], created["client_secret"])
    async with bearer(http, token) as isv:
        assert (await isv.get("/v1/debtors")).status_code == 200
        assert (await isv.post("/v1/debtors", json={"external_ref": "X", "name": "X",
                                                   "country": "PE"})).status_code == 403


async def test_explicit_scopes_and_no_escalation(http: AsyncTestClient[Litestar],
                                                 tenant: TenantClient) -> None:
    created = await _create(tenant, scopes=["portfolio:read", "clients:write"])
    assert created["scopes"] == ["portfolio:read", "clients:write"]
    token = await token_for(http, created["client_id"], created["client_secret"])
    async with bearer(http, token) as limited:
        r = await limited.post("/v1/clients", json={"name": "x", "scopes": ["portfolio:write"]})
        assert_problem(r, 403, "scope_escalation", "scopes")
        r = await limited.post("/v1/clients", json={"name": "x"})
        assert r.status_code == 201 and r.json()["scopes"] == ["portfolio:read"]
        # nor may it take over a client holding more than it does
        r = await limited.post(f"/v1/clients/{tenant.client_id}/rotate-secret")
        assert_problem(r, 403, "scope_escalation", "client_id")
        r = await limited.post(f"/v1/clients/{tenant.client_id}/disable")
        assert_problem(r, 403, "scope_escalation", "client_id")
        assert (await limited.delete(f"/v1/clients/{tenant.client_id}")).status_code == 403
    r = await tenant.api.post("/v1/clients", json={"name": "x", "scopes": ["platform:admin"]})
    assert_problem(r, 403, "scope_not_grantable", "scopes")


async def test_a_disabled_clients_tokens_fail_at_once(http: AsyncTestClient[Litestar],
                                                      tenant: TenantClient) -> None:
    created = await _create(tenant)
    token = await token_for(http, created["client_id"], created["client_secret"])
    async with bearer(http, token) as isv:
        assert (await isv.get("/v1/debtors")).status_code == 200  # the state is now cached
        r = await tenant.api.post(f"/v1/clients/{created['client_id']}/disable")
        assert r.status_code == 200 and r.json()["disabled"] is True
        r = await isv.get("/v1/debtors")
        assert_problem(r, 401, "invalid_token")
        r = await http.post("/oauth/token", data=GRANT,
                            auth=(created["client_id"], created["client_secret"]))
        assert r.status_code == 401
        assert (await tenant.api.post(
            f"/v1/clients/{created['client_id']}/enable")).json()["disabled"] is False
        assert (await isv.get("/v1/debtors")).status_code == 200


async def test_a_deleted_clients_tokens_fail_at_once(http: AsyncTestClient[Litestar],
                                                     tenant: TenantClient) -> None:
    created = await _create(tenant)
    token = await token_for(http, created["client_id"], created["client_secret"])
    async with bearer(http, token) as isv:
        assert (await isv.get("/v1/debtors")).status_code == 200
        assert (await tenant.api.delete(f"/v1/clients/{created['client_id']}")
                ).status_code == 204
        assert_problem(await isv.get("/v1/debtors"), 401, "invalid_token")
    r = await tenant.api.get(f"/v1/clients/{created['client_id']}")
    assert_problem(r, 404, "not_found", "client_id")


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
        http: AsyncTestClient[Litestar], tenant: TenantClient) -> None:
    created = await _create(tenant)
    client_id, old = created["client_id"], created["client_secret"]
    r = await tenant.api.post(f"/v1/clients/{client_id}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["client_secret"]
    assert new and new != old and r.headers["cache-control"] == "no-store"
    expires = r.json()["previous_secret_expires_at"]
    assert expires is not None
    assert (await token_for(http, client_id, old))  # within the grace period
    assert (await token_for(http, client_id, new))
    with time_machine.travel(clock.now() + timedelta(hours=24, seconds=5), tick=False):
        r = await http.post("/oauth/token", data=GRANT, auth=(client_id, old))
        assert r.status_code == 401
        r = await http.post("/oauth/token", data=GRANT, auth=(client_id, new))
        assert r.status_code == 200


async def test_another_tenants_client_is_404(make_tenant: Any, tenant: TenantClient) -> None:
    other = await make_tenant()
    for method, path in (("GET", ""), ("POST", "/disable"), ("POST", "/enable"),
                         ("POST", "/rotate-secret"), ("DELETE", "")):
        r = await tenant.api.request(method, f"/v1/clients/{other.client_id}{path}")
        assert_problem(r, 404, "not_found", "client_id")
    listed = (await tenant.api.get("/v1/clients")).json()["data"]
    assert other.client_id not in {c["client_id"] for c in listed}
    # the other tenant's client still works
    assert (await other.api.get("/v1/debtors")).status_code == 200


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    ({"name": "x", "colour": "red"}, 422, "validation_error", None),
    ({"name": 42}, 422, "validation_error", "name"),
    ({"name": ""}, 422, "validation_error", "name"),
    ({}, 422, "validation_error", None),
    ({"name": "x", "scopes": "portfolio:read"}, 422, "validation_error", "scopes"),
    ({"name": "x", "scopes": []}, 422, "validation_error", "scopes"),
    ({"name": "x", "scopes": ["portfolio:everything"]}, 422, "unknown_scope", "scopes"),
    ({"name": "x", "auth_method": "password"}, 422, "validation_error", "auth_method"),
    ({"name": "x", "jwks_uri": "https://keys.example.com/jwks.json"}, 422,
     "keys_not_allowed", "jwks_uri"),
    ({"name": "x", "auth_method": "private_key_jwt"}, 422, "keys_required", "jwks"),
    ({"name": "x", "auth_method": "private_key_jwt", "jwks": {"keys": []}}, 422,
     "invalid_jwks", "jwks"),
    ({"name": "x", "auth_method": "private_key_jwt",
      "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, 422, "invalid_jwks", "jwks"),
    ({"name": "x", "auth_method": "private_key_jwt", "jwks_uri": "ftp://keys.example.com/"},
     422, "invalid_jwks_uri", "jwks_uri"),
    ({"name": "x", "auth_method": "private_key_jwt", "jwks_uri": "http://keys.example.com/"},
     422, "invalid_jwks_uri", "jwks_uri"),
])
async def test_create_bad_input(tenant: TenantClient, body: dict[str, Any], status: int,
                                code: str, param: str | None) -> None:
    r = await tenant.api.post("/v1/clients", json=body)
    assert_problem(r, status, code, param)
    listed = (await tenant.api.get("/v1/clients")).json()["data"]
    assert [c["client_id"] for c in listed] == [tenant.client_id]


async def test_malformed_body_and_unknown_parameter(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/clients", content=b'{"name": ',
                              headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed_json")
    r = await tenant.api.get("/v1/clients", params={"colour": "red"})
    assert_problem(r, 400, "unknown_parameter")


async def test_missing_scopes_are_403(http: AsyncTestClient[Litestar],
                                      tenant: TenantClient) -> None:
    created = await _create(tenant, scopes=["portfolio:read"])
    token = await token_for(http, created["client_id"], created["client_secret"])
    async with bearer(http, token) as reader:
        for method, path in (("GET", "/v1/clients"), ("POST", "/v1/clients"),
                             ("GET", f"/v1/clients/{tenant.client_id}"),
                             ("POST", f"/v1/clients/{tenant.client_id}/disable"),
                             ("POST", f"/v1/clients/{tenant.client_id}/rotate-secret"),
                             ("DELETE", f"/v1/clients/{tenant.client_id}")):
            r = await reader.request(method, path, json={"name": "x"}
                                     if method == "POST" else None)
            assert_problem(r, 403, "insufficient_scope")
    assert (await http.get("/v1/clients")).status_code == 401
