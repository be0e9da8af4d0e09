"""Inbound webhooks: signature-checked, stored raw, processed once, handshake."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from cartera_sdk.signatures import meta_signature
from litestar import Litestar
from sqlalchemy import func, select

from cartera.integrations.models import WebhookEvent
from tests.conftest import TenantClient
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
    url = f"/v1/hooks/{integ['id']}"
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


async def test_bad_signature_is_401_and_recorded(tenant: TenantClient, app: Litestar,
                                                 http) -> None:  # type: ignore[no-untyped-def]
    integ = await create(tenant)
    url = f"/v1/hooks/{integ['id']}"
    tampered = await http.post(url, content=BODY + b" ", headers=signed(BODY))
    assert tampered.status_code == 401 and tampered.json()["code"] == "invalid_signature"
    unsigned = await http.post(url, content=BODY)
    assert unsigned.status_code == 401
    deliveries = (await tenant.api.get(
        f"/v1/integrations/{integ['id']}/webhook-deliveries")).json()
    assert [d["rejection"] for d in deliveries] == ["missing_signature", "bad_signature"]
    assert await events_of(app, integ["id"]) == 0


async def test_handshake_echoes_the_challenge_only_with_the_token(tenant: TenantClient,
                                                                  http) -> None:  # type: ignore[no-untyped-def]
    integ = await create(tenant)
    ok = await http.get(f"/v1/hooks/{integ['id']}",
                        params={"verify_token": "tok", "challenge": "12345"})
    assert (ok.status_code, ok.text) == (200, "12345")
    refused = await http.get(f"/v1/hooks/{integ['id']}",
                             params={"verify_token": "bad", "challenge": "12345"})
    assert refused.status_code == 401


async def test_unknown_or_disabled_integration_is_404(tenant: TenantClient, http) -> None:  # type: ignore[no-untyped-def]
    assert (await http.post("/v1/hooks/999999", content=BODY)).status_code == 404
    integ = await create(tenant)
    await tenant.api.patch(f"/v1/integrations/{integ['id']}", json={"enabled": False})
    assert (await http.post(f"/v1/hooks/{integ['id']}", content=BODY,
                            headers=signed(BODY))).status_code == 404
