"""Integrations: validated config, write-only encrypted secrets, connection tests."""

from __future__ import annotations

from typing import Any

from cartera_sdk.testkit import FakeHTTPServer, FakeResponse
from litestar import Litestar
from sqlalchemy import select

from cartera.integrations.models import Integration
from tests.conftest import PUBLIC_BASE_URL, TenantClient


def spec(**overrides: Any) -> dict[str, Any]:
    return {"name": "SMS principal", "provider_kind": "channel", "provider_name": "fixture_sms",
            "config": {"base_url": "http://127.0.0.1:9"},
            "secrets": {"api_key": "key-123", "webhook_secret": "whsec-abc",
                        "verify_token": "tok"}, **overrides}


async def create(t: TenantClient, **overrides: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/integrations", json=spec(**overrides))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_secrets_are_write_only_and_encrypted_at_rest(tenant: TenantClient,
                                                            app: Litestar) -> None:
    created = await create(tenant)
    assert created["secrets_set"] == ["api_key", "verify_token", "webhook_secret"]
    assert "key-123" not in str(created)
    fetched = (await tenant.api.get(f"/v1/integrations/{created['id']}")).text
    assert "key-123" not in fetched and "whsec-abc" not in fetched
    async with app.state.ctx.sessionmaker() as session:
        row = await session.scalar(select(Integration).where(Integration.id == created["id"]))
    assert row is not None and row.secrets_sealed is not None
    assert b"key-123" not in row.secrets_sealed
    assert created["webhook_url"].startswith(f"{PUBLIC_BASE_URL}/v1/hooks/")
    assert not created["webhook_url"].endswith(f"/v1/hooks/{created['id']}")


async def test_config_is_validated_against_the_provider_schema(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/integrations", json=spec(config={"base_url": 5}))
    assert r.status_code == 422
    assert (r.json()["code"], r.json()["param"]) == ("invalid_config", "config.base_url")
    missing = await tenant.api.post("/v1/integrations", json=spec(secrets={"api_key": "x"}))
    assert missing.status_code == 422 and missing.json()["param"].startswith("secrets")
    wrong_secret = await tenant.api.post("/v1/integrations", json=spec(
        secrets={"api_key": 12345678, "webhook_secret": "s"}))
    assert "12345678" not in wrong_secret.text
    unknown = await tenant.api.post("/v1/integrations", json=spec(provider_name="nope"))
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_provider"


async def test_update_merges_secrets_and_disables(tenant: TenantClient) -> None:
    created = await create(tenant)
    r = await tenant.api.patch(f"/v1/integrations/{created['id']}",
                               json={"secrets": {"api_key": "rotated"}, "enabled": False})
    assert r.status_code == 200, r.text
    assert r.json()["secrets_set"] == ["api_key", "verify_token", "webhook_secret"]
    assert r.json()["enabled"] is False
    test = await tenant.api.post(f"/v1/integrations/{created['id']}/test")
    assert test.status_code == 409 and test.json()["code"] == "integration_disabled"


async def test_connection_test_uses_stored_secrets(tenant: TenantClient) -> None:
    with FakeHTTPServer() as server:
        server.route("GET", "/ping", lambda req: FakeResponse(
            200 if req.headers.get("authorization") == "Bearer key-123" else 401))
        good = await create(tenant, config={"base_url": server.base_url})
        r = await tenant.api.post(f"/v1/integrations/{good['id']}/test")
        assert r.json() == {"ok": True, "detail": "connection test passed", "code": None}
        bad = await create(tenant, config={"base_url": server.base_url},
                           secrets={"api_key": "wrong", "webhook_secret": "s"})
        r = await tenant.api.post(f"/v1/integrations/{bad['id']}/test")
        assert r.json()["ok"] is False and r.json()["code"] == "rejected"


async def test_a_hanging_plugin_times_out_without_hurting_the_api(tenant: TenantClient) -> None:
    slow = await create(tenant, provider_name="fixture_slow")
    r = await tenant.api.post(f"/v1/integrations/{slow['id']}/test")
    assert r.status_code == 504 and r.json()["code"] == "plugin_timeout"
    assert (await tenant.api.get("/healthz")).status_code == 200


async def test_other_tenants_cannot_see_integrations(tenant: TenantClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    created = await create(tenant)
    other = await make_tenant()
    assert (await other.api.get(f"/v1/integrations/{created['id']}")).status_code == 404
