"""Webhook endpoints and delivery: Standard Webhooks signatures (checked with the
``standardwebhooks`` package), filters, retries with backoff, disabling, redelivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from litestar import Litestar
from sqlalchemy import select
from standardwebhooks import Webhook

from cartera.events.delivery import DeliveryWorker
from cartera.events.models import EventDelivery, WebhookEndpoint
from tests.conftest import TenantClient
from tests.events.test_events_api import events, new_debtor, pay

OK = FakeResponse(status=204)


@pytest.fixture
def receiver() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as server:
        server.route("POST", "/hook", OK)
        yield server


async def endpoint(t: TenantClient, url: str, types: list[str] | None = None,
                   ) -> tuple[int, str]:
    r = await t.api.post("/v1/webhook-endpoints", json={"url": url,
                                                        "event_types": types or ["*"]})
    assert r.status_code == 201, r.text
    body = r.json()
    return int(body["endpoint"]["id"]), str(body["secret"])


async def deliver(app: Litestar) -> int:
    async with DeliveryWorker(app.state.ctx.sessionmaker) as worker:
        return await worker.drain(10)


def verified(secret: str, request: RecordedRequest) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_deliveries_are_signed_per_standard_webhooks(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    _, secret = await endpoint(tenant, f"{receiver.base_url}/hook")
    assert secret.startswith("whsec_")
    await new_debtor(tenant)
    await deliver(app)
    (request,) = receiver.requests_to("POST", "/hook")
    (event,) = await events(tenant)
    assert verified(secret, request) == event
    assert request.headers["webhook-id"] == event["id"]
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)


async def test_filters_choose_what_an_endpoint_receives(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    _, secret = await endpoint(tenant, f"{receiver.base_url}/hook", ["payment.*"])
    await pay(tenant, await new_debtor(tenant))
    await deliver(app)
    assert [verified(secret, r)["type"] for r in receiver.requests_to("POST", "/hook")] == [
        "payment.created"]


async def test_a_failed_delivery_is_retried_after_a_backoff(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    receiver.route("POST", "/hook", [FakeResponse(status=500, body="x" * 5000), OK])
    endpoint_id, secret = await endpoint(tenant, f"{receiver.base_url}/hook")
    await new_debtor(tenant)
    await deliver(app)
    await deliver(app)  # not due yet: the backoff holds it
    assert len(receiver.requests_to("POST", "/hook")) == 1
    async with app.state.ctx.sessionmaker() as session:
        d = await session.scalar(select(EventDelivery).where(
            EventDelivery.endpoint_id == endpoint_id))
    assert d is not None and d.status == "pending" and d.attempts == 1
    assert d.next_attempt_at >= datetime.now(UTC) + timedelta(seconds=20)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=2)):
        await deliver(app)
    first, second = receiver.requests_to("POST", "/hook")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verified(secret, second)["type"] == "debtor.created"
    log = (await tenant.api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()
    assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in log["data"]] == [
        (1, 500, False), (2, 204, True)]
    assert log["data"][0]["response_excerpt"] == "x" * 200
    assert all(a["latency_ms"] >= 0 for a in log["data"])


async def test_a_debtors_events_arrive_in_order(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    receiver.route("POST", "/hook", [FakeResponse(status=503), OK])
    _, secret = await endpoint(tenant, f"{receiver.base_url}/hook",
                               ["debtor.created", "debtor.updated"])
    d = await new_debtor(tenant)
    r = await tenant.api.patch(f"/v1/debtors/{d}", json={"name": "Rosa María"})
    assert r.status_code == 200, r.text
    await deliver(app)
    # the update waits for the failed creation: it is not overtaken
    assert [verified(secret, x)["type"] for x in receiver.requests_to("POST", "/hook")] == [
        "debtor.created"]
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=2)):
        await deliver(app)
    assert [verified(secret, x)["type"] for x in receiver.requests_to("POST", "/hook")] == [
        "debtor.created", "debtor.created", "debtor.updated"]


async def test_an_endpoint_failing_for_three_days_is_disabled(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    receiver.route("POST", "/hook", FakeResponse(status=500))
    endpoint_id, _ = await endpoint(tenant, f"{receiver.base_url}/hook")
    await new_debtor(tenant)
    start = datetime.now(UTC)
    await deliver(app)
    for hours in (1, 12, 36, 60):  # still retried, still enabled
        with time_machine.travel(start + timedelta(hours=hours)):
            await deliver(app)
    got = (await tenant.api.get(f"/v1/webhook-endpoints/{endpoint_id}")).json()
    assert got["enabled"] is True and got["failing_since"] is not None
    with time_machine.travel(start + timedelta(days=3, hours=1)):
        await deliver(app)
    got = (await tenant.api.get(f"/v1/webhook-endpoints/{endpoint_id}")).json()
    assert (got["enabled"], got["disabled_reason"]) == (False, "failing")
    (disabled,) = await events(tenant, type="webhook_endpoint.disabled")
    assert disabled["resource"] == {"type": "webhook_endpoint", "id": str(endpoint_id)}
    async with app.state.ctx.sessionmaker() as session:
        statuses = (await session.scalars(select(EventDelivery.status).where(
            EventDelivery.endpoint_id == endpoint_id))).all()
    assert statuses == ["failed"]
    assert len(receiver.requests_to("POST", "/hook")) == 6


async def test_redeliver_sends_the_same_event_again(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    endpoint_id, secret = await endpoint(tenant, f"{receiver.base_url}/hook")
    await new_debtor(tenant)
    await deliver(app)
    (event,) = await events(tenant)
    r = await tenant.api.post(f"/v1/events/{event['id']}/redeliver")
    assert r.status_code == 202, r.text
    assert [(d["endpoint_id"], d["status"]) for d in r.json()["data"]] == [
        (endpoint_id, "pending")]
    await deliver(app)
    first, again = receiver.requests_to("POST", "/hook")
    assert verified(secret, again) == verified(secret, first) == event
    r = await tenant.api.post(f"/v1/events/{event['id']}/redeliver",
                              json={"endpoint_id": endpoint_id + 10_000})
    assert (r.status_code, r.json()["param"]) == (422, "endpoint_id")


async def test_endpoint_lifecycle_and_secret_rotation(
        app: Litestar, tenant: TenantClient, receiver: FakeHTTPServer) -> None:
    endpoint_id, old = await endpoint(tenant, f"{receiver.base_url}/hook", ["debtor.*"])
    listed = (await tenant.api.get("/v1/webhook-endpoints")).json()["data"]
    assert [e["id"] for e in listed] == [endpoint_id] and "secret" not in listed[0]
    r = await tenant.api.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old
    await new_debtor(tenant, "A")
    await deliver(app)
    (request,) = receiver.requests_to("POST", "/hook")
    assert verified(new, request) == verified(old, request)  # both during the grace period
    r = await tenant.api.patch(f"/v1/webhook-endpoints/{endpoint_id}",
                               json={"enabled": False, "description": "paused"})
    assert (r.json()["enabled"], r.json()["description"]) == (False, "paused")
    await new_debtor(tenant, "B")
    await deliver(app)
    assert len(receiver.requests_to("POST", "/hook")) == 1  # disabled: nothing more
    assert (await tenant.api.delete(f"/v1/webhook-endpoints/{endpoint_id}")).status_code == 204
    assert (await tenant.api.get(f"/v1/webhook-endpoints/{endpoint_id}")).status_code == 404
    async with app.state.ctx.sessionmaker() as session:
        assert await session.get(WebhookEndpoint, endpoint_id) is None


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"url": "http://example.com/hook", "event_types": ["*"]}, "url", "egress_refused"),
    ({"url": "https://10.1.2.3/hook", "event_types": ["*"]}, "url", "egress_refused"),
    ({"url": "https://192.168.0.10:8443/hook", "event_types": ["*"]}, "url",
     "egress_refused"),
    ({"url": "ftp://example.com/hook", "event_types": ["*"]}, "url", "invalid_url"),
    ({"url": "https://u:p@example.com/hook", "event_types": ["*"]}, "url", "invalid_url"),
    ({"url": "https://example.com/hook", "event_types": ["debtors.created"]},
     "event_types[0]", "unknown_event_type"),
])
async def test_bad_endpoints_are_422_naming_the_field(tenant: TenantClient,
                                                      body: dict[str, Any], param: str,
                                                      code: str) -> None:
    r = await tenant.api.post("/v1/webhook-endpoints", json=body)
    assert r.status_code == 422, r.text
    assert (r.json()["param"], r.json()["code"]) == (param, code)


@pytest.mark.parametrize("body", [
    {"url": "https://example.com/hook"},
    {"url": "https://example.com/hook", "event_types": []},
    {"url": "https://example.com/hook", "event_types": ["Payment Created"]},
    {"url": "https://example.com/hook", "event_types": ["*"], "secret": "mine"},
    {"url": 5, "event_types": ["*"]},
])
async def test_malformed_endpoints_are_refused(tenant: TenantClient,
                                               body: dict[str, Any]) -> None:
    r = await tenant.api.post("/v1/webhook-endpoints", json=body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["param"]


async def test_other_tenants_endpoints_are_404(tenant: TenantClient, make_tenant: Any,
                                               receiver: FakeHTTPServer) -> None:
    other = await make_tenant()
    theirs, _ = await endpoint(other, f"{receiver.base_url}/hook")
    base = f"/v1/webhook-endpoints/{theirs}"
    assert (await tenant.api.get(base)).status_code == 404
    assert (await tenant.api.get(f"{base}/deliveries")).status_code == 404
    assert (await tenant.api.patch(base, json={"enabled": False})).status_code == 404
    assert (await tenant.api.post(f"{base}/rotate-secret")).status_code == 404
    assert (await tenant.api.delete(base)).status_code == 404
    assert (await tenant.api.get("/v1/webhook-endpoints")).json()["data"] == []
    assert (await other.api.get(base)).json()["enabled"] is True
