"""Interactions are events as their status changes: queued, receipts, replies, opt-outs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cartera_sdk.testkit import FakeHTTPServer

from tests.conftest import TenantClient
from tests.events.test_events_api import events
from tests.messaging.test_sending import provider, setup, webhook
from tests.segmentation.test_segments import RunJobs

__all__ = ["provider"]  # the fixture


async def test_interaction_statuses_are_events(tenant: TenantClient, http: Any,
                                               provider: FakeHTTPServer,
                                               run_jobs: RunJobs) -> None:
    debtor, integration, template = await setup(tenant, provider)
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template})
    assert sent.status_code == 202, sent.text
    interaction = sent.json()["id"]
    await run_jobs()
    ts = int(datetime.now(UTC).timestamp())
    await webhook(http, integration, {"events": [
        {"id": "e-dlv", "message_id": "msg-1", "status": "delivered", "ts": ts + 1},
        {"id": "e-dlv", "message_id": "msg-1", "status": "delivered", "ts": ts + 1}]})
    await webhook(http, integration, {"inbound": [
        {"id": "in-1", "from": "+51987654321", "to": "ACME", "text": "baja", "ts": ts + 5}]})
    await run_jobs()
    found = await events(tenant, type="interaction.*", debtor_id=debtor)
    types = [e["type"] for e in found]
    assert types[0] == "interaction.queued"
    assert found[0]["resource"] == {"type": "interaction", "id": str(interaction)}
    assert types.count("interaction.delivered") == 1  # the duplicate receipt changes nothing
    assert types[-2:] == ["interaction.replied", "interaction.opted_out"]
    assert found[-1]["resource"]["id"] != str(interaction)  # the reply is its own interaction
