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


async def test_part_receipts_without_an_outbox_id_find_their_message_by_part_ids(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    """The provider's receipts name only each part's own id (no ``client-ref``): the part
    ids recorded with the ``sent`` outcome attribute them to the message."""
    from cartera_sdk import OutboundMessage, SmsContent

    from cartera.messaging import batch

    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    sessionmaker = app.state.ctx.sessionmaker
    async with sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        interaction = Interaction(tenant_id=tenant.tenant_id, direction="outbound",
                                  channel="sms", status="sending", attempts=1,
                                  integration_id=integ["id"], address="+5491100000000")
        session.add(interaction)
        await session.commit()
        interaction_id = interaction.id
    message = OutboundMessage(message_id=f"int_{interaction_id}", idempotency_key="k",
                              to="+5491100000000", content=SmsContent(text="x" * 400))
    claimed = batch.Claimed(tenant_id=tenant.tenant_id, interaction_id=interaction_id,
                            attempt=1, message=message)
    assert await batch.record(sessionmaker, [(claimed, SENT)]) == {"sent": 1}
    for part in ("p-3", "p-2", "p-1"):
        assert (await http.get(url, params=receipt(part, "delivered"))).status_code == 200
    await run_jobs()
    assert await _status(app, interaction_id) == "delivered"
    async with sessionmaker() as session:
        details = (await session.scalars(select(InteractionEvent.detail).where(
            InteractionEvent.interaction_id == interaction_id,
            InteractionEvent.source == "webhook").order_by(InteractionEvent.id))).all()
    assert [d["part"]["index"] for d in details] == [3, 2, 1]


async def test_fragments_missing_parts_after_the_window_are_recorded_incomplete(
    tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    """Parts 1 and 3 of 3 arrive, part 2 never does: nothing is recorded within the window;
    after it the reply is recorded with the parts that came, marked incomplete, once; a
    late part 2 is then recorded on its own (never joined to another message)."""
    from datetime import timedelta

    from sqlalchemy import update

    from cartera import clock
    from cartera.integrations.models import WebhookEvent
    from cartera.messaging.inbound import FRAGMENT_WINDOW, expire_fragments

    integ = await create(tenant, provider_name="fixture_query_sms")
    url = await hook_path(http, integ["id"])
    texts = {1: "Pago el ", 2: "lunes ", 3: "sin falta."}

    async def fragment(index: int) -> None:
        params = signed(msisdn="5491100000000", to="CARTERA", messageId=f"g-{index}",
                        text=texts[index], **{"concat-ref": "9", "concat-part": str(index),
                                              "concat-total": "3"})
        assert (await http.get(url, params=params)).status_code == 200
        await run_jobs()

    async def inbound() -> list[dict[str, Any]]:
        async with app.state.ctx.sessionmaker() as session:
            rows = (await session.scalars(select(Interaction).where(
                Interaction.integration_id == integ["id"],
                Interaction.direction == "inbound").order_by(Interaction.id))).all()
        return [dict(i.content or {}) for i in rows]

    async def age_everything() -> int:
        async with app.state.ctx.sessionmaker() as session:
            await session.execute(update(WebhookEvent).where(
                WebhookEvent.integration_id == integ["id"]).values(
                received_at=clock.now() - FRAGMENT_WINDOW - timedelta(minutes=1)))
            recorded = await expire_fragments(session, clock.now(), {})
            await session.commit()
        return recorded

    for index in (1, 3):
        await fragment(index)
    async with app.state.ctx.sessionmaker() as session:
        assert await expire_fragments(session, clock.now(), {}) == 0  # still in the window
    assert await inbound() == []
    assert await age_everything() == 1
    assert await inbound() == [{"text": "Pago el [...] sin falta.", "incomplete": True,
                                "parts_received": [1, 3], "parts_expected": 3}]
    assert await age_everything() == 0  # idempotent
    await fragment(2)
    assert len(await inbound()) == 1  # not joined to the expired parts
    assert await age_everything() == 1
    assert (await inbound())[-1] == {"text": "[...] lunes [...]", "incomplete": True,
                                     "parts_received": [2], "parts_expected": 3}
