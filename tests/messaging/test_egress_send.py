"""A provider address the egress rules refuse (a private address) fails the send at once,
permanently, with a clear code: no retry can change it (only the allow-list or the
integration's configuration can)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from cartera.jobs.models import Job
from cartera.messaging.models import InteractionEvent
from tests.conftest import TenantClient
from tests.messaging.test_templates import SMS, debtor_with_debt
from tests.messaging.test_twilio_end_to_end import ACCOUNT, TOKEN


async def test_a_refused_egress_fails_the_send_at_once_without_retries(
    tenant: TenantClient, app: Any, run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = (await tenant.api.post("/v1/integrations", json={
        "name": "Twilio", "provider_kind": "channel", "provider_name": "twilio_sms",
        "config": {"base_url": "https://10.20.30.40", "account_sid": ACCOUNT,
                   "from_number": "+15005550006"},
        "secrets": {"auth_token": TOKEN}}))
    assert integ.status_code == 201, integ.text
    template = (await tenant.api.post("/v1/templates", json=SMS)).json()
    debtor = await debtor_with_debt(tenant)
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integ.json()["id"],
        "template_id": template["id"]})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent.json()['id']}")).json()
    assert (row["status"], row["failure_code"]) == ("failed", "egress_refused")
    assert "not a public address" in row["failure_reason"]
    async with app.state.ctx.sessionmaker() as session:
        events = (await session.scalars(select(InteractionEvent.status).where(
            InteractionEvent.interaction_id == sent.json()["id"])
            .order_by(InteractionEvent.id))).all()
        wakes = await session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "messages.send", Job.tenant_id == tenant.tenant_id))
    assert list(events) == ["queued", "failed"]  # no "retrying" step
    assert wakes == 0
