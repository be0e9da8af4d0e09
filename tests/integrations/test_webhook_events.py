"""Webhook events no domain handler takes (a payment event from a channel integration: only
a payment integration's are reconciled) are marked ``ignored`` with the reason, never
``processed`` with no effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import cartera_fixture_plugin
import pytest
from cartera_sdk.channels import DeliveryStatusEvent
from cartera_sdk.payments import PaymentEvent
from litestar import Litestar
from sqlalchemy import select

from cartera.integrations.models import WebhookEvent
from tests.conftest import TenantClient, hook_path
from tests.integrations.test_integrations import create
from tests.integrations.test_webhooks import BODY, signed


async def test_payment_events_are_ignored_with_a_reason(
        tenant: TenantClient, app: Litestar, http: Any, run_jobs: Callable[[], Awaitable[int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    parse = cartera_fixture_plugin.FixtureSms.parse_webhook

    def with_a_payment(self: Any, request: Any, ctx: Any) -> list[Any]:
        found: list[Any] = parse(self, request, ctx)
        return [*found, PaymentEvent(event_id="pay-1", kind="payment", action="payment.created",
                                     resource_id="123")]

    monkeypatch.setattr(cartera_fixture_plugin.FixtureSms, "parse_webhook", with_a_payment)
    integ = await create(tenant)
    r = await http.post(await hook_path(http, integ["id"]), content=BODY, headers=signed(BODY))
    assert r.status_code == 200, r.text
    await run_jobs()
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.execute(
            select(WebhookEvent.event_id, WebhookEvent.event_type, WebhookEvent.status,
                   WebhookEvent.reason, WebhookEvent.processed_at)
            .where(WebhookEvent.integration_id == integ["id"])
            .order_by(WebhookEvent.event_id))).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("ev-1", DeliveryStatusEvent.__name__, "processed"),
        ("ev-2", DeliveryStatusEvent.__name__, "processed"),
        ("pay-1", "PaymentEvent", "ignored")]
    assert [r[3] for r in rows[:2]] == [None, None]
    assert rows[2][3].startswith("not_a_payment_integration")
    assert all(r[4] is not None for r in rows)
