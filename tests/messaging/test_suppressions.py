"""Opt-outs and suppressions that hold: phone forms (Mexico's legacy mobile 1), opt-outs
recorded only when applied, hard bounces / spam reports / carrier opt-outs making a
contact point unusable for the channel; and delivery state as one ordered story."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest

from cartera.messaging.suppression import address_forms
from tests.conftest import TenantClient
from tests.messaging.test_sendgrid_end_to_end import PUBLIC, post_events
from tests.messaging.test_twilio_end_to_end import ACCOUNT, TOKEN, callback
from tests.messaging.test_whatsapp_end_to_end import APP_SECRET, PHONE_ID, notification, post_signed
from tests.payments.test_allocation import days_ago, obligation
from tests.segmentation.test_segments import run as run_segments
from tests.segmentation.test_segments import segment_of

RunJobs = Callable[[], Awaitable[int]]


def test_address_forms_cover_whatsapp_digits_and_legacy_mobile_prefixes() -> None:
    assert "+525512345678" in address_forms("5215512345678")
    assert "+5215512345678" in address_forms("+525512345678")
    assert "+541155550000" in address_forms("5491155550000")
    assert address_forms("51987654321") == ["+51987654321", "51987654321"]
    assert address_forms("rosa@example.pe") == ["rosa@example.pe"]


@pytest.fixture
def graph() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as server:
        yield server


async def _whatsapp(t: TenantClient, graph: FakeHTTPServer) -> int:
    r = await t.api.post("/v1/integrations", json={
        "name": "WhatsApp", "provider_kind": "channel", "provider_name": "whatsapp",
        "config": {"phone_number_id": PHONE_ID, "base_url": graph.base_url},
        "secrets": {"access_token": "EAAG-token", "app_secret": APP_SECRET,
                    "verify_token": "v"}})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _reply(http: Any, integration: int, wa_id: str, text: str, msg_id: str) -> None:
    await post_signed(http, integration, notification({
        "contacts": [{"profile": {"name": "X"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": msg_id, "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": text}}]}))


async def _inbound(t: TenantClient, integration: int) -> list[dict[str, Any]]:
    rows = (await t.api.get("/v1/interactions", params={"direction": "inbound",
                                                        "limit": 100})).json()["data"]
    return [r for r in rows if r["integration_id"] == integration]


async def test_a_mexican_reply_from_521_opts_out_the_debtor_stored_as_52(
        tenant: TenantClient, http: Any, graph: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration = await _whatsapp(tenant, graph)
    debtor = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "MX-1", "name": "Lupita Perez", "country": "MX",
        "contact_points": [{"kind": "whatsapp", "value": "+525512345678",
                            "consent": "granted"}]})).json()
    assert debtor["contact_points"][0]["value"] == "+525512345678"
    await _reply(http, integration, "5215512345678", "BAJA", "wamid.MX1")
    await run_jobs()
    point = (await tenant.api.get(f"/v1/debtors/{debtor['id']}")).json()["contact_points"][0]
    assert point["opted_out_channels"] == ["whatsapp"]
    [reply] = await _inbound(tenant, integration)
    assert reply["debtor_id"] == debtor["id"]
    assert [e["status"] for e in reply["timeline"]] == ["received", "opted_out"]


async def test_an_opt_out_nobody_matches_is_recorded_unmatched(
        tenant: TenantClient, http: Any, graph: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration = await _whatsapp(tenant, graph)
    await _reply(http, integration, "5219999999999", "BAJA", "wamid.NOBODY")
    await run_jobs()
    [reply] = await _inbound(tenant, integration)
    assert reply["debtor_id"] is None
    assert [e["status"] for e in reply["timeline"]] == ["received", "unmatched"]
    assert reply["timeline"][1]["detail"]["contact_point_ids"] == []


@pytest.fixture
def sendgrid() -> Iterator[FakeHTTPServer]:
    def send(req: RecordedRequest) -> FakeResponse:
        return FakeResponse(202, b"", {"X-Message-Id": "sg-msg-1"})

    with FakeHTTPServer() as server:
        server.route("POST", "/v3/mail/send", send)
        yield server


async def _email_setup(t: TenantClient, sendgrid: FakeHTTPServer) -> tuple[int, int, int]:
    integ = (await t.api.post("/v1/integrations", json={
        "name": "SendGrid", "provider_kind": "channel", "provider_name": "sendgrid",
        "config": {"base_url": sendgrid.base_url, "from_address": "cobranzas@acme.pe"},
        "secrets": {"api_key": "SG.key", "webhook_public_key": PUBLIC}})).json()["id"]
    template = (await t.api.post("/v1/templates", json={
        "code": "aviso", "channel": "email", "locale": "es-PE", "name": "Aviso",
        "subject": "Aviso", "body": "Hola {{ debtor.first_name }}",
        "html": "<p>Hola</p>"})).json()["id"]
    debtor = (await t.api.post("/v1/debtors", json={
        "external_ref": "E-1", "name": "Rosa Quispe", "country": "PE",
        "contact_points": [{"kind": "email", "value": "rosa@example.pe"}]})).json()["id"]
    await obligation(t, debtor, "F-E", "99.90", days_ago(5))
    return integ, template, debtor


async def _send(t: TenantClient, debtor: int, integration: int, template: int) -> Any:
    return await t.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template})


@pytest.mark.parametrize(("event", "reason"), [
    ({"event": "bounce", "status": "5.1.1", "type": "bounce",
      "reason": "550 5.1.1 User unknown"}, "hard_bounce"),
    ({"event": "spamreport"}, "spam_complaint"),
])
async def test_hard_bounces_and_spam_reports_suppress_the_address_for_email(
        tenant: TenantClient, http: Any, sendgrid: FakeHTTPServer, run_jobs: RunJobs,
        event: dict[str, Any], reason: str) -> None:
    integration, template, debtor = await _email_setup(tenant, sendgrid)
    await tenant.api.put("/v1/segments", json={"segments": [
        {"code": "email", "name": "E-mail", "rule": {"feature": "consent", "channel": "email",
                                                       "op": "eq", "value": True}},
        {"code": "rest", "name": "Unreachable", "rule": {"all": []}}]})
    await run_segments(tenant, run_jobs)
    assert await segment_of(tenant, debtor) == "email"
    sent = await _send(tenant, debtor, integration, template)
    await run_jobs()
    await post_events(http, integration, [{
        "email": "rosa@example.pe", "timestamp": int(time.time()), "sg_event_id": "ev-1",
        "sg_message_id": "sg-msg-1.filter0001", **event}])
    await run_jobs()
    assert await segment_of(tenant, debtor) == "rest"  # reachability is re-evaluated
    point = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert point["suppressions"]["email"]["reason"] == reason
    assert point["suppressions"]["email"]["interaction_id"] == sent.json()["id"]
    refused = await _send(tenant, debtor, integration, template)
    assert refused.status_code == 422, refused.text
    assert refused.json()["reasons"][0]["code"] == "suppressed"


async def test_a_soft_bounce_leaves_the_address_usable(
        tenant: TenantClient, http: Any, sendgrid: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration, template, debtor = await _email_setup(tenant, sendgrid)
    await _send(tenant, debtor, integration, template)
    await run_jobs()
    await post_events(http, integration, [{
        "email": "rosa@example.pe", "timestamp": int(time.time()), "sg_event_id": "ev-b",
        "sg_message_id": "sg-msg-1.filter0001", "event": "bounce", "status": "5.7.1",
        "type": "blocked", "reason": "550 5.7.1 blocked"}])
    await run_jobs()
    point = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert point["suppressions"] == {}
    assert (await _send(tenant, debtor, integration, template)).status_code == 202


async def test_delivery_state_is_derived_from_the_story_in_provider_time_order(
        tenant: TenantClient, http: Any, sendgrid: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration, template, debtor = await _email_setup(tenant, sendgrid)
    sent = (await _send(tenant, debtor, integration, template)).json()["id"]
    await run_jobs()
    now = int(time.time())
    base = {"email": "rosa@example.pe", "sg_message_id": "sg-msg-1.filter0001"}
    # Arrival order: delivered (t+3), then the earlier processed (t+1) and deferred (t+2).
    await post_events(http, integration, [{**base, "event": "delivered", "timestamp": now + 3,
                                           "sg_event_id": "d"}])
    await post_events(http, integration, [
        {**base, "event": "deferred", "timestamp": now + 2, "sg_event_id": "f",
         "response": "421 try later"},
        {**base, "event": "processed", "timestamp": now + 1, "sg_event_id": "p"}])
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent}")).json()
    assert [e["status"] for e in row["timeline"]] == [
        "queued", "sent", "queued", "deferred", "delivered"]
    provider_times = [e["occurred_at"] for e in row["timeline"][2:]]
    assert provider_times == sorted(provider_times) and None not in provider_times
    assert (row["status"], row["failure_code"]) == ("delivered", None)


@pytest.fixture
def twilio() -> Iterator[FakeHTTPServer]:
    """Twilio's Messages API: +51987654000 has replied STOP (error 21610)."""
    expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()

    def create(req: RecordedRequest) -> FakeResponse:
        assert req.headers.get("authorization") == expected
        if req.form()["To"] == ["+51987654000"]:
            return FakeResponse(400, {"code": 21610, "status": 400, "message":
                                      "Attempt to send to unsubscribed recipient"})
        return FakeResponse(201, {"sid": f"SM{len(server.requests):04d}", "status": "queued"})

    with FakeHTTPServer() as server:
        server.route("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", create)
        yield server


async def _sms_setup(t: TenantClient, twilio: FakeHTTPServer, phone: str) -> tuple[int, int, int]:
    integ = (await t.api.post("/v1/integrations", json={
        "name": "Twilio", "provider_kind": "channel", "provider_name": "twilio_sms",
        "config": {"base_url": twilio.base_url, "account_sid": ACCOUNT,
                   "from_number": "+15005550006"},
        "secrets": {"auth_token": TOKEN}})).json()
    template = (await t.api.post("/v1/templates", json={
        "code": "sms", "channel": "sms", "locale": "es-PE", "name": "s",
        "body": "Hola {{ debtor.first_name }}"})).json()["id"]
    debtor = (await t.api.post("/v1/debtors", json={
        "external_ref": f"S-{phone}", "name": "Rosa Quispe", "country": "PE",
        "contact_points": [{"kind": "phone", "value": phone,
                            "consent": "granted"}]})).json()["id"]
    return integ["id"], template, debtor


async def test_a_carrier_opt_out_at_send_suppresses_sms_on_that_number(
        tenant: TenantClient, twilio: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration, template, debtor = await _sms_setup(tenant, twilio, "987654000")
    sent = (await _send(tenant, debtor, integration, template)).json()["id"]
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent}")).json()
    assert (row["status"], row["failure_code"]) == ("failed", "21610")
    point = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert point["suppressions"]["sms"]["reason"] == "carrier_opt_out"
    assert point["suppressions"]["sms"]["code"] == "21610"
    refused = await _send(tenant, debtor, integration, template)
    assert refused.json()["reasons"][0]["code"] == "suppressed"


async def test_a_late_delivered_after_undelivered_clears_the_failure(
        tenant: TenantClient, http: Any, twilio: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration, template, debtor = await _sms_setup(tenant, twilio, "987654321")
    sent = (await _send(tenant, debtor, integration, template)).json()["id"]
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent}")).json()
    url = twilio.requests[0].form()["StatusCallback"][0]
    sid = row["provider_message_id"]
    common = {"MessageSid": sid, "AccountSid": ACCOUNT, "To": "+51987654321"}
    await callback(http, url, {**common, "MessageStatus": "undelivered", "ErrorCode": "30003"})
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent}")).json()
    assert (row["status"], row["failure_code"]) == ("failed", "30003")
    await callback(http, url, {**common, "MessageStatus": "delivered"})
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent}")).json()
    assert (row["status"], row["failure_code"], row["failure_reason"]) == (
        "delivered", None, None)
    assert [e["status"] for e in row["timeline"]][-2:] == ["undelivered", "delivered"]


async def test_a_suppression_can_be_lifted_audited_and_only_by_its_tenant(
        tenant: TenantClient, make_tenant: Callable[..., Awaitable[TenantClient]],
        twilio: FakeHTTPServer, run_jobs: RunJobs) -> None:
    integration, template, debtor = await _sms_setup(tenant, twilio, "987654000")
    await _send(tenant, debtor, integration, template)
    await run_jobs()
    point = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert point["suppressions"]["sms"]["reason"] == "carrier_opt_out"
    path = f"/v1/debtors/{debtor}/contact-points/{point['id']}/suppressions"
    other = await make_tenant()
    assert (await other.api.delete(f"{path}/sms")).status_code == 404  # not theirs
    missing = await tenant.api.delete(f"{path}/email")
    assert (missing.status_code, missing.json()["code"], missing.json()["param"]) == (
        404, "suppression_not_found", "channel")
    lifted = await tenant.api.delete(f"{path}/sms")
    assert lifted.status_code == 204, lifted.text
    again = (await tenant.api.get(f"/v1/debtors/{debtor}")).json()["contact_points"][0]
    assert again["suppressions"] == {}
    audit = (await tenant.api.get("/v1/audit", params={
        "resource_type": "debtor", "resource_id": str(debtor), "limit": 100})).json()["data"]
    assert [a["changes"]["lifted"]["code"] for a in audit
            if a["action"] == "contact_point.suppression_lifted"] == ["21610"]
    assert (await _send(tenant, debtor, integration, template)).status_code == 202
