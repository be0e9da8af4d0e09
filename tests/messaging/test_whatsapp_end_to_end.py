"""The real WhatsApp plugin through the API: configure, send a template, follow Meta's
signed status webhooks to delivered, and an inbound BAJA that stops the next send."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cartera_sdk.signatures import meta_signature
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest

from tests.conftest import TenantClient, hook_path
from tests.messaging.test_templates import debtor_with_debt

PHONE_ID = "106540352242922"
APP_SECRET = "meta-app-secret"


@pytest.fixture
def graph() -> Iterator[FakeHTTPServer]:
    def messages(req: RecordedRequest) -> FakeResponse:
        body = req.json()
        ok = (req.headers.get("authorization") == "Bearer EAAG-token"
              and body.get("messaging_product") == "whatsapp" and body.get("type") == "template"
              and body["template"]["language"]["code"] == "es_PE")
        if not ok:
            return FakeResponse(400, {"error": {"message": "(#100) Invalid parameter",
                                                "type": "OAuthException", "code": 100}})
        return FakeResponse(200, {"messaging_product": "whatsapp",
                                  "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                  "messages": [{"id": "wamid.TEST1"}]})

    with FakeHTTPServer() as server:
        server.route("POST", f"/v25.0/{PHONE_ID}/messages", messages)
        yield server


def notification(value: dict[str, Any]) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
            **value}}]}]}).encode()


async def post_signed(http: Any, integration_id: int, body: bytes) -> None:
    r = await http.post(await hook_path(http, integration_id), content=body, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta_signature(APP_SECRET, body)})
    assert r.status_code == 200, r.text


async def test_whatsapp_template_to_delivered_then_baja(
    tenant: TenantClient, http: Any, graph: FakeHTTPServer,
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = await tenant.api.post("/v1/integrations", json={
        "name": "WhatsApp", "provider_kind": "channel", "provider_name": "whatsapp",
        "config": {"phone_number_id": PHONE_ID, "base_url": graph.base_url},
        "secrets": {"access_token": "EAAG-token", "app_secret": APP_SECRET,
                    "verify_token": "verify-me"}})
    assert integ.status_code == 201, integ.text
    integration = integ.json()["id"]
    handshake = await http.get(await hook_path(http, integration), params={
        "hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"})
    assert (handshake.status_code, handshake.text) == (200, "1158201444")

    template = (await tenant.api.post("/v1/templates", json={
        "code": "recordatorio", "channel": "whatsapp", "locale": "es-PE", "name": "r",
        "body": "Hola {{ debtor.first_name }}, debes {{ balance.overdue }}",
        "whatsapp": {"name": "recordatorio_pago", "language": "es_PE", "parameters": [
            {"type": "text", "value": "{{ debtor.first_name }}"},
            {"type": "currency", "value": "{{ balance.overdue }}"}]}})).json()
    debtor = await debtor_with_debt(tenant)
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template["id"]})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    [request] = graph.requests_to("POST", f"/v25.0/{PHONE_ID}/messages")
    components = request.json()["template"]["components"]
    body_params = next(c for c in components if c["type"] == "body")["parameters"]
    assert body_params[0] == {"type": "text", "text": "Rosa"}
    assert body_params[1]["type"] == "currency"
    assert body_params[1]["currency"]["code"] == "PEN"
    assert body_params[1]["currency"]["amount_1000"] == 1250500
    interaction_id = sent.json()["id"]
    row = (await tenant.api.get(f"/v1/interactions/{interaction_id}")).json()
    assert (row["status"], row["provider_message_id"]) == ("sent", "wamid.TEST1")

    ts = str(int(datetime.now(UTC).timestamp()))
    delivered = notification({"statuses": [{"id": "wamid.TEST1", "status": "delivered",
                                            "timestamp": ts, "recipient_id": "51987654321"}]})
    await post_signed(http, integration, delivered)
    await post_signed(http, integration, delivered)  # Meta redelivers: harmless
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{interaction_id}")).json()
    assert row["status"] == "delivered"
    assert [e["status"] for e in row["timeline"]] == ["queued", "sent", "delivered"]

    forged = await http.post(await hook_path(http, integration), content=delivered, headers={
        "X-Hub-Signature-256": meta_signature("wrong-secret", delivered)})
    assert forged.status_code == 401

    await post_signed(http, integration, notification({
        "contacts": [{"profile": {"name": "Rosa"}, "wa_id": "51987654321"}],
        "messages": [{"from": "51987654321", "id": "wamid.IN1", "timestamp": ts,
                      "type": "text", "text": {"body": "BAJA"}}]}))
    await run_jobs()
    point = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert point["opted_out_channels"] == ["whatsapp"]
    refused = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template["id"]})
    assert (refused.status_code, refused.json()["code"]) == (422, "contact_refused")
    assert refused.json()["reasons"][0]["code"] == "opted_out"
