"""Webhooks that carry their events on GET (Vonage's default for receipts and inbound
SMS) are processed as deliveries, not refused as failed handshakes; delivery states the
host did not know, and the provider's raw status, reach the interaction's timeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cartera_sdk.signatures import sorted_params_signature
from litestar import Litestar
from sqlalchemy import select

from cartera.integrations.models import WebhookEvent, WebhookRejection
from cartera.messaging.models import Interaction, InteractionEvent
from tests.conftest import TenantClient, hook_path
from tests.integrations.test_integrations import create

SECRET = "whsec-abc"


def signed(**params: str) -> dict[str, str]:
    return {**params, "sig": sorted_params_signature(SECRET, params)}


def receipt(message_id: str, status: str, ts: str = "2026-03-02T10:00:00+00:00",
            **extra: str) -> dict[str, str]:
    return signed(messageId=message_id, status=status, **{"message-timestamp": ts}, **extra)


async def _sent_interaction(app: Litestar, tenant: TenantClient, integration_id: int,
                            provider_message_id: str) -> int:
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        interaction = Interaction(tenant_id=tenant.tenant_id, direction="outbound",
                                  channel="sms", status="sent", integration_id=integration_id,
                                  address="+5491100000000",
                                  provider_message_id=provider_message_id)
        session.add(interaction)
        await session.commit()
        return interaction.id


async def _timeline(app: Litestar, interaction_id: int) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.scalars(select(InteractionEvent).where(
            InteractionEvent.interaction_id == interaction_id,
            InteractionEvent.source == "webhook").order_by(InteractionEvent.id))).all()
        return [(r.status, dict(r.detail)) for r in rows]


async def test_a_signed_get_receipt_is_a_delivery_not_a_refused_handshake(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    interaction_id = await _sent_interaction(app, tenant, integ["id"], "vm-1")
    answer = await http.get(url, params=receipt("vm-1", "expired", **{"err-code": "5"}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["received"] is True
    await run_jobs()
    async with app.state.ctx.sessionmaker() as session:
        events = (await session.scalars(select(WebhookEvent).where(
            WebhookEvent.integration_id == integ["id"]))).all()
        interaction = await session.get(Interaction, interaction_id)
    assert [(e.event_id, e.status) for e in events] == [("vm-1:expired", "processed")]
    assert events[0].payload["provider_status"] == "expired"
    assert interaction is not None and interaction.status == "failed"
    assert interaction.failure_code == "5"
    assert await _timeline(app, interaction_id) == [
        ("expired", {"code": "5", "reason": None, "provider_status": "expired"})]


async def test_an_unmapped_provider_status_is_an_unknown_event_that_moves_nothing(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    interaction_id = await _sent_interaction(app, tenant, integ["id"], "vm-2")
    assert (await http.get(url, params=receipt("vm-2", "DELIVRD?"))).status_code == 200
    assert (await http.get(url, params=receipt(
        "vm-2", "buffered", "2026-03-02T10:00:01+00:00"))).status_code == 200
    await run_jobs()
    timeline = await _timeline(app, interaction_id)
    assert [(s, d["provider_status"]) for s, d in timeline] == [
        ("unknown", "DELIVRD?"), ("buffered", "buffered")]
    async with app.state.ctx.sessionmaker() as session:
        interaction = await session.get(Interaction, interaction_id)
    assert interaction is not None and interaction.status == "sent"


async def test_unsigned_or_tampered_get_is_refused_as_a_bad_signature(
    tenant: TenantClient, app: Litestar, http: Any,
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    tampered = {**receipt("vm-3", "delivered"), "status": "failed"}
    unsigned = {k: v for k, v in receipt("vm-3", "delivered").items() if k != "sig"}
    for params in (tampered, unsigned):
        refused = await http.get(url, params=params)
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_signature"
    async with app.state.ctx.sessionmaker() as session:
        reasons = sorted((await session.scalars(select(WebhookRejection.reason).where(
            WebhookRejection.integration_id == integ["id"]))).all())
    assert reasons == ["bad_signature", "missing_signature"]


async def test_a_json_provider_still_refuses_a_get_that_is_no_handshake(
    tenant: TenantClient, http: Any,
) -> None:
    integ = await create(tenant)  # fixture_sms declares JSON webhooks only
    refused = await http.get(await hook_path(http, integ["id"]),
                             params=receipt("vm-4", "delivered"))
    assert refused.status_code == 401
    assert refused.json()["code"] == "handshake_refused"
