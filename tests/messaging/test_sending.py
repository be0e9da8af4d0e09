"""End to end: configure an integration, send, follow the interaction through signed
webhooks, and an inbound BAJA that revokes consent so the next send is refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cartera_sdk.signatures import meta_signature
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest

from tests.conftest import TenantClient, hook_path
from tests.messaging.test_templates import SMS, debtor_with_debt

RunJobs = Callable[[], Awaitable[int]]


@pytest.fixture
def provider() -> Iterator[FakeHTTPServer]:
    """The fixture SMS provider's API: strict about auth and fields."""
    counter = iter(range(1, 10_000))

    def messages(req: RecordedRequest) -> FakeResponse:
        body = req.json()
        if req.headers.get("authorization") != "Bearer key-123":
            return FakeResponse(401, {"error": "bad key"})
        if set(body) != {"to", "from", "text", "ref"} or not body["to"].startswith("+"):
            return FakeResponse(400, {"error": "bad request"})
        return FakeResponse(201, {"id": f"msg-{next(counter)}"})

    with FakeHTTPServer() as server:
        server.route("POST", "/messages", messages)
        yield server


async def setup(t: TenantClient, server: FakeHTTPServer) -> tuple[int, int, int]:
    integ = await t.api.post("/v1/integrations", json={
        "name": "SMS", "provider_kind": "channel", "provider_name": "fixture_sms",
        "config": {"base_url": server.base_url, "sender": "ACME"},
        "secrets": {"api_key": "key-123", "webhook_secret": "whsec"}})
    assert integ.status_code == 201, integ.text
    template = await t.api.post("/v1/templates", json=SMS)
    return await debtor_with_debt(t), integ.json()["id"], template.json()["id"]


async def webhook(http: Any, integration_id: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    r = await http.post(await hook_path(http, integration_id), content=body, headers={
        "X-Fixture-Signature": meta_signature("whsec", body)})
    assert r.status_code == 200, r.text


async def current_segment(t: TenantClient, debtor_id: int) -> str | None:
    segment: str | None = (await t.api.get(f"/v1/segments/explain/{debtor_id}")).json()[
        "current_segment"]
    return segment


async def test_send_then_delivery_then_opt_out(tenant: TenantClient, http: Any,
                                               provider: FakeHTTPServer,
                                               run_jobs: RunJobs) -> None:
    debtor, integration, template = await setup(tenant, provider)
    r = await tenant.api.put("/v1/segments", json={"segments": [
        {"code": "sms", "name": "SMS", "rule": {"feature": "consent", "channel": "sms",
                                                "op": "eq", "value": True}},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]})
    assert r.status_code == 200, r.text
    await tenant.api.patch(f"/v1/debtors/{debtor}", json={"zone": "Lima"})  # re-segments
    assert await current_segment(tenant, debtor) == "sms"
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template},
        headers={"Idempotency-Key": "send-1"})
    assert sent.status_code == 202, sent.text
    interaction = sent.json()
    assert interaction["status"] == "queued"
    assert interaction["verdict"]["decision"] == "allow"
    await run_jobs()
    [request] = provider.requests_to("POST", "/messages")
    assert request.json()["to"] == "+51987654321"
    assert request.json()["text"].startswith("Hola Rosa")
    assert request.headers["idempotency-key"] == f"cartera-interaction-{interaction['id']}"
    after = (await tenant.api.get(f"/v1/interactions/{interaction['id']}")).json()
    assert (after["status"], after["provider_message_id"]) == ("sent", "msg-1")

    ts = int(datetime.now(UTC).timestamp())
    # Out of order and duplicated: "read" arrives before "delivered", twice.
    await webhook(http, integration, {"events": [
        {"id": "e-read", "message_id": "msg-1", "status": "read", "ts": ts + 2},
        {"id": "e-read", "message_id": "msg-1", "status": "read", "ts": ts + 2},
        {"id": "e-dlv", "message_id": "msg-1", "status": "delivered", "ts": ts + 1}]})
    await run_jobs()
    after = (await tenant.api.get(f"/v1/interactions/{interaction['id']}")).json()
    assert after["status"] == "read"
    # The timeline is the provider's story, in its event-time order, not arrival order.
    assert [e["status"] for e in after["timeline"]] == ["queued", "sent", "delivered", "read"]

    await webhook(http, integration, {"inbound": [
        {"id": "in-1", "from": "+51987654321", "to": "ACME", "text": "baja", "ts": ts + 5}]})
    await run_jobs()
    replies = (await tenant.api.get("/v1/interactions", params={
        "debtor_id": debtor, "direction": "inbound"})).json()["data"]
    assert replies[0]["content"] == {"text": "baja"}
    point = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert point["opted_out_channels"] == ["sms"]
    assert await current_segment(tenant, debtor) == "rest"  # consent is a rule feature

    refused = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template})
    assert refused.status_code == 422
    assert refused.json()["code"] == "contact_refused"
    assert [r["code"] for r in refused.json()["reasons"]] == ["opted_out"]
    logged = (await tenant.api.get(
        f"/v1/interactions/{refused.json()['interaction_id']}")).json()
    assert logged["status"] == "refused"
    assert len(provider.requests_to("POST", "/messages")) == 1


async def test_idempotent_send_and_retry_after_rate_limit(tenant: TenantClient,
                                                          run_jobs: RunJobs) -> None:
    with FakeHTTPServer() as server:
        server.route("POST", "/messages", [FakeResponse(429, {}, {"Retry-After": "3600"}),
                                           FakeResponse(201, {"id": "m-9"})])
        debtor, integration, template = await setup(tenant, server)
        body = {"debtor_id": debtor, "integration_id": integration, "template_id": template}
        first = await tenant.api.post("/v1/messages", json=body,
                                      headers={"Idempotency-Key": "k-1"})
        again = await tenant.api.post("/v1/messages", json=body,
                                      headers={"Idempotency-Key": "k-1"})
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        await run_jobs()  # 429: retried later
        row = (await tenant.api.get(f"/v1/interactions/{first.json()['id']}")).json()
        assert row["status"] == "queued"
        assert row["timeline"][-1]["detail"]["kind"] == "rate_limited"
        await _make_due(tenant)
        await run_jobs()
        row = (await tenant.api.get(f"/v1/interactions/{first.json()['id']}")).json()
        assert row["status"] == "sent"
        assert len(server.requests_to("POST", "/messages")) == 2


async def _make_due(t: TenantClient) -> None:
    """Bring every delayed job and waiting message of this tenant forward (instead of
    sleeping in a test)."""
    from sqlalchemy import update

    from cartera import clock
    from cartera.db.engine import make_engine, make_sessionmaker
    from cartera.jobs.models import Job
    from cartera.messaging.models import Interaction
    from cartera.settings import get_settings

    engine = make_engine(get_settings().database_url)
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Job).where(Job.tenant_id == t.tenant_id,
                                                Job.status == "queued").values(run_after=None))
        await session.execute(update(Interaction).where(
            Interaction.tenant_id == t.tenant_id, Interaction.not_before.is_not(None),
            Interaction.status.in_(("queued", "deferred"))).values(not_before=clock.now()))
        await session.commit()
    await engine.dispose()


async def test_permanent_failure_is_recorded_with_the_reason(tenant: TenantClient,
                                                             run_jobs: RunJobs) -> None:
    with FakeHTTPServer() as server:
        server.route("POST", "/messages", FakeResponse(400, {"error": "invalid number"}))
        debtor, integration, template = await setup(tenant, server)
        sent = (await tenant.api.post("/v1/messages", json={
            "debtor_id": debtor, "integration_id": integration,
            "template_id": template})).json()
        await run_jobs()
        row = (await tenant.api.get(f"/v1/interactions/{sent['id']}")).json()
        assert (row["status"], row["failure_code"]) == ("failed", "400")
        assert "invalid number" in row["failure_reason"]


async def test_channel_mismatch_and_wrong_contact_kind(tenant: TenantClient,
                                                       provider: FakeHTTPServer) -> None:
    debtor, integration, _ = await setup(tenant, provider)
    email = (await tenant.api.post("/v1/templates", json={
        "code": "mail", "channel": "email", "locale": "es-PE", "name": "m", "subject": "s",
        "body": "b", "html": "<p>b</p>"})).json()
    r = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": email["id"]})
    assert (r.status_code, r.json()["code"]) == (422, "channel_mismatch")


async def test_the_batch_sender_emits_sent_and_failed_events(tenant: TenantClient,
                                                             provider: FakeHTTPServer,
                                                             run_jobs: RunJobs) -> None:
    """ISVs follow a message through ``interaction.*`` events, not only through receipts."""
    debtor, integration, template = await setup(tenant, provider)
    sent = (await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template})).json()
    await run_jobs()
    provider.route("POST", "/messages", FakeResponse(400, {"error": "invalid number"}))
    failed = (await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template})).json()
    await run_jobs()
    found = (await tenant.api.get("/v1/events", params={
        "type": ["interaction.sent", "interaction.failed"]})).json()["data"]
    story = sorted((e["type"], e["resource"]["id"], e["debtor_id"]) for e in found)
    assert story == sorted([("interaction.sent", str(sent["id"]), debtor),
                            ("interaction.failed", str(failed["id"]), debtor)])
