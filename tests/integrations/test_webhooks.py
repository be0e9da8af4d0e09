"""Inbound webhooks: an unguessable path, signature-checked, stored raw with credentials
redacted, processed once, handshake; refused requests counted without their body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from cartera_sdk.signatures import meta_signature
from litestar import Litestar
from sqlalchemy import func, select

from cartera.integrations.models import WebhookDelivery, WebhookEvent, WebhookRejection
from tests.conftest import PUBLIC_BASE_URL, TenantClient, hook_path
from tests.integrations.test_integrations import create

BODY = json.dumps({"events": [
    {"id": "ev-1", "message_id": "m-1", "status": "delivered", "ts": 1763900000},
    {"id": "ev-2", "message_id": "m-2", "status": "failed", "ts": 1763900001},
]}).encode()


def signed(body: bytes, secret: str = "whsec-abc") -> dict[str, str]:
    return {"X-Fixture-Signature": meta_signature(secret, body),
            "Content-Type": "application/json"}


async def events_of(app: Litestar, integration_id: int) -> int:
    async with app.state.ctx.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookEvent).where(
            WebhookEvent.integration_id == integration_id)) or 0)


async def test_valid_webhook_is_stored_processed_and_deduplicated(
    tenant: TenantClient, app: Litestar, http, run_jobs: Callable[[], Awaitable[int]],  # type: ignore[no-untyped-def]
) -> None:
    integ = await create(tenant)
    url = await hook_path(http, integ["id"])
    first = await http.post(url, content=BODY, headers=signed(BODY))
    assert first.status_code == 200, first.text
    await run_jobs()
    assert await events_of(app, integ["id"]) == 2
    replay = await http.post(url, content=BODY, headers=signed(BODY))
    assert replay.status_code == 200
    await run_jobs()
    assert await events_of(app, integ["id"]) == 2
    deliveries = (await tenant.api.get(
        f"/v1/integrations/{integ['id']}/webhook-deliveries")).json()
    assert [(d["events_new"], d["events_duplicate"]) for d in deliveries] == [(0, 2), (2, 0)]


async def test_bad_signature_is_401_and_counted_without_the_body(
    tenant: TenantClient, app: Litestar, http,  # type: ignore[no-untyped-def]
) -> None:
    integ = await create(tenant)
    url = await hook_path(http, integ["id"])
    for _ in range(3):
        tampered = await http.post(url, content=BODY + b" ", headers=signed(BODY))
        assert tampered.status_code == 401 and tampered.json()["code"] == "invalid_signature"
    unsigned = await http.post(url, content=BODY)
    assert unsigned.status_code == 401
    assert (await tenant.api.get(
        f"/v1/integrations/{integ['id']}/webhook-deliveries")).json() == []
    rejections = (await tenant.api.get(
        f"/v1/integrations/{integ['id']}/webhook-rejections")).json()
    assert sorted((r["reason"], r["count"]) for r in rejections) == [
        ("bad_signature", 3), ("missing_signature", 1)]
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.integration_id == integ["id"])) == 0
        assert await session.scalar(select(func.count()).select_from(WebhookRejection).where(
            WebhookRejection.integration_id == integ["id"])) == 2
    assert await events_of(app, integ["id"]) == 0


async def test_stored_deliveries_redact_credentials(
    tenant: TenantClient, app: Litestar, http,  # type: ignore[no-untyped-def]
) -> None:
    integ = await create(tenant)
    url = await hook_path(http, integ["id"]) + "?access_token=tok-123&cartera_message_id=m-1"
    r = await http.post(url, content=BODY, headers={
        **signed(BODY), "Authorization": "Basic dXNlcjpwYXNz", "X-Api-Key": "k-9"})
    assert r.status_code == 200, r.text
    async with app.state.ctx.sessionmaker() as session:
        delivery = await session.get(WebhookDelivery, r.json()["delivery_id"])
    assert delivery is not None
    stored = json.dumps(delivery.headers) + delivery.url
    for secret in ("dXNlcjpwYXNz", "k-9", "tok-123", meta_signature("whsec-abc", BODY)):
        assert secret not in stored
    assert delivery.headers["authorization"] == "[redacted]"
    assert "cartera_message_id=m-1" in delivery.url
    assert "access_token=[redacted]" in delivery.url


async def test_handshake_echoes_the_challenge_only_with_the_token(tenant: TenantClient,
                                                                  http) -> None:  # type: ignore[no-untyped-def]
    integ = await create(tenant)
    ok = await http.get(await hook_path(http, integ["id"]),
                        params={"verify_token": "tok", "challenge": "12345"})
    assert (ok.status_code, ok.text) == (200, "12345")
    refused = await http.get(await hook_path(http, integ["id"]),
                             params={"verify_token": "bad", "challenge": "12345"})
    assert refused.status_code == 401


async def test_the_path_is_an_unguessable_token_and_the_id_path_is_404(
    tenant: TenantClient, http,  # type: ignore[no-untyped-def]
) -> None:
    integ = await create(tenant)
    path = await hook_path(http, integ["id"])
    token = path.removeprefix("/v1/hooks/")
    assert integ["webhook_url"] == f"{PUBLIC_BASE_URL}{path}"
    assert len(token) == 43 and str(integ["id"]) != token
    assert (await http.post(path, content=BODY, headers=signed(BODY))).status_code == 200
    altered = ("B" if token[0] == "A" else "A") + token[1:]
    for other in (f"/v1/hooks/{integ['id']}", "/v1/hooks/999999", f"/v1/hooks/{altered}"):
        assert (await http.post(other, content=BODY, headers=signed(BODY))).status_code == 404
    assert (await http.get(f"/v1/hooks/{integ['id']}",
                           params={"verify_token": "tok", "challenge": "1"})).status_code == 404
    second = await create(tenant)
    assert second["webhook_url"] != integ["webhook_url"]


async def test_unknown_or_disabled_integration_is_404(tenant: TenantClient, http) -> None:  # type: ignore[no-untyped-def]
    integ = await create(tenant)
    await tenant.api.patch(f"/v1/integrations/{integ['id']}", json={"enabled": False})
    assert (await http.post(await hook_path(http, integ["id"]), content=BODY,
                            headers=signed(BODY))).status_code == 404
