"""Long SMS: receipts for every part count (parts 2..n carry their own ids), the message
is delivered once all parts are; inbound fragments are joined by concatenation reference;
sub-cent provider prices are kept at the provider's precision."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cartera_sdk import MessagePart, Price, Sent
from litestar import Litestar
from sqlalchemy import select

from cartera.messaging.models import Interaction, InteractionEvent
from cartera.messaging.parts import sent_detail
from cartera.messaging.sending import add_event
from tests.conftest import TenantClient, hook_path
from tests.integrations.test_integrations import create
from tests.integrations.test_query_webhooks import receipt, signed

SENT = Sent(provider_message_id="p-1", price=Price.of("0.0333", "EUR"), parts=[
    MessagePart(index=1, count=3, provider_message_id="p-1"),
    MessagePart(index=2, count=3, provider_message_id="p-2"),
    MessagePart(index=3, count=3, provider_message_id="p-3")])


async def _sent(app: Litestar, tenant: TenantClient, integration_id: int) -> int:
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        interaction = Interaction(tenant_id=tenant.tenant_id, direction="outbound",
                                  channel="sms", status="sent", integration_id=integration_id,
                                  address="+5491100000000", provider_message_id="p-1")
        session.add(interaction)
        await session.flush()
        add_event(session, interaction, "sent", "provider", provider_message_id="p-1",
                  **sent_detail(SENT))
        await session.commit()
        return interaction.id


async def _status(app: Litestar, interaction_id: int) -> str:
    async with app.state.ctx.sessionmaker() as session:
        interaction = await session.get(Interaction, interaction_id)
        assert interaction is not None
        return interaction.status


async def test_receipts_for_every_part_are_kept_and_the_message_waits_for_all(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    interaction_id = await _sent(app, tenant, integ["id"])
    ref = {"client-ref": f"int_{interaction_id}"}
    for part in ("p-1", "p-3"):
        assert (await http.get(url, params=receipt(
            part, "delivered", price="0.0333", currency="EUR", **ref))).status_code == 200
    await run_jobs()
    assert await _status(app, interaction_id) == "sent"  # part 2 has no receipt yet
    assert (await http.get(url, params=receipt("p-2", "delivered", **ref))).status_code == 200
    await run_jobs()
    assert await _status(app, interaction_id) == "delivered"
    async with app.state.ctx.sessionmaker() as session:
        details = (await session.scalars(select(InteractionEvent.detail).where(
            InteractionEvent.interaction_id == interaction_id,
            InteractionEvent.source == "webhook").order_by(InteractionEvent.id))).all()
    assert [d["part"]["index"] for d in details] == [1, 3, 2]
    assert details[0]["price"] == {"amount": "0.0333", "currency": "EUR"}


async def test_a_failed_part_fails_the_message(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    interaction_id = await _sent(app, tenant, integ["id"])
    ref = {"client-ref": f"int_{interaction_id}"}
    for part, status in (("p-1", "delivered"), ("p-2", "rejected"), ("p-3", "delivered")):
        assert (await http.get(url, params=receipt(part, status, **ref))).status_code == 200
    await run_jobs()
    assert await _status(app, interaction_id) == "failed"


async def test_inbound_fragments_are_joined_once_all_arrive_in_any_order(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    texts = {1: "Hola, pagaré ", 2: "el viernes sin ", 3: "falta."}
    for index in (3, 1, 2):
        params = signed(msisdn="5491100000000", to="CARTERA", messageId=f"f-{index}",
                        text=texts[index], **{"concat-ref": "77", "concat-part": str(index),
                                              "concat-total": "3"})
        assert (await http.get(url, params=params)).status_code == 200
        await run_jobs()
    async with app.state.ctx.sessionmaker() as session:
        inbound = (await session.scalars(select(Interaction).where(
            Interaction.integration_id == integ["id"],
            Interaction.direction == "inbound"))).all()
    assert [i.content for i in inbound] == [{"text": "Hola, pagaré el viernes sin falta."}]
