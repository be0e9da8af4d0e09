"""The real SendGrid provider through the API: send an e-mail, then ECDSA-signed Event
Webhook batches take it to delivered; an unsubscribe event stops the next e-mail."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import TenantClient, hook_path
from tests.payments.test_allocation import days_ago, obligation

KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.fixture
def sendgrid() -> Iterator[FakeHTTPServer]:
    def send(req: RecordedRequest) -> FakeResponse:
        body = req.json()
        if req.headers.get("authorization") != "Bearer SG.key":
            return FakeResponse(401, {"errors": [{"message": "unauthorized", "field": None}]})
        if not body.get("personalizations") or not body.get("content"):
            return FakeResponse(400, {"errors": [{"message": "bad", "field": "content"}]})
        return FakeResponse(202, b"", {"X-Message-Id": "sg-msg-1"})

    with FakeHTTPServer() as server:
        server.route("POST", "/v3/mail/send", send)
        yield server


async def post_events(http: Any, integration_id: int, events: list[dict[str, Any]]) -> None:
    body = json.dumps(events).encode()
    ts = str(int(time.time()))
    signature = base64.b64encode(KEY.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256())))
    r = await http.post(await hook_path(http, integration_id), content=body, headers={
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature.decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts})
    assert r.status_code == 200, r.text


async def test_sendgrid_email_to_delivered_then_unsubscribe(
    tenant: TenantClient, http: Any, sendgrid: FakeHTTPServer,
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = (await tenant.api.post("/v1/integrations", json={
        "name": "SendGrid", "provider_kind": "channel", "provider_name": "sendgrid",
        "config": {"base_url": sendgrid.base_url, "from_address": "cobranzas@acme.pe"},
        "secrets": {"api_key": "SG.key", "webhook_public_key": PUBLIC}})).json()
    template = (await tenant.api.post("/v1/templates", json={
        "code": "aviso", "channel": "email", "locale": "es-PE", "name": "Aviso",
        "subject": "Aviso de deuda: {{ balance.overdue }}",
        "body": "Hola {{ debtor.first_name }}, tienes {{ balance.overdue }} vencido.",
        "html": "<p>Hola {{ debtor.first_name }}</p>"})).json()
    debtor = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "E-1", "name": "Rosa Quispe", "country": "PE",
        "contact_points": [{"kind": "email", "value": "rosa@example.pe"}]})).json()["id"]
    await obligation(tenant, debtor, "F-E", "99.90", days_ago(5))
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integ["id"], "template_id": template["id"]})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    [request] = sendgrid.requests_to("POST", "/v3/mail/send")
    mail = request.json()
    assert mail["personalizations"][0]["to"][0]["email"] == "rosa@example.pe"
    assert mail["subject"].startswith("Aviso de deuda: S/")
    interaction = sent.json()["id"]
    row = (await tenant.api.get(f"/v1/interactions/{interaction}")).json()
    assert (row["status"], row["provider_message_id"]) == ("sent", "sg-msg-1")

    now = int(time.time())
    common = {"email": "rosa@example.pe", "timestamp": now,
              "sg_message_id": "sg-msg-1.filter0001", "cartera_message_id": f"int_{interaction}"}
    events = [{**common, "event": "processed", "sg_event_id": "ev-1"},
              {**common, "event": "delivered", "sg_event_id": "ev-2"}]
    await post_events(http, integ["id"], events)
    await post_events(http, integ["id"], events)  # redelivered batch: harmless
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{interaction}")).json()
    assert row["status"] == "delivered"

    await post_events(http, integ["id"], [{**common, "event": "unsubscribe",
                                           "sg_event_id": "ev-3"}])
    await run_jobs()
    refused = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integ["id"], "template_id": template["id"]})
    assert (refused.status_code, refused.json()["reasons"][0]["code"]) == (422, "opted_out")
