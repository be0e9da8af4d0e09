"""The real Twilio SMS provider through the API: send, signed status callbacks to
delivered, and an inbound BAJA that stops the next SMS."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from cartera_sdk.signatures import twilio_signature
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest

from tests.conftest import PUBLIC_BASE_URL, TenantClient, hook_path
from tests.messaging.test_templates import SMS, debtor_with_debt

ACCOUNT, TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-auth-token"


@pytest.fixture
def twilio() -> Iterator[FakeHTTPServer]:
    expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()

    def create(req: RecordedRequest) -> FakeResponse:
        form = req.form()
        if req.headers.get("authorization") != expected:
            return FakeResponse(401, {"code": 20003, "message": "Authenticate", "status": 401})
        if not {"To", "From", "Body"} <= set(form):
            return FakeResponse(400, {"code": 21604, "message": "A 'To' phone number is "
                                      "required.", "status": 400})
        return FakeResponse(201, {"sid": "SM0001", "status": "queued", "to": form["To"][0]})

    with FakeHTTPServer() as server:
        server.route("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", create)
        yield server


async def callback(http: Any, url: str, params: dict[str, str], *,
                   signed_url: str | None = None, expect: int = 200) -> None:
    """POST form params to ``url``'s path on the test host (not ``url``'s host: as behind
    a proxy), signed as Twilio does over ``signed_url`` (default ``url``) + sorted params."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    r = await http.post(path, content=urlencode(params), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TOKEN, signed_url or url, params)})
    assert r.status_code == expect, r.text


async def test_signed_callbacks_behind_a_proxy_are_checked_against_the_public_url(
        tenant: TenantClient, http: Any, twilio: FakeHTTPServer) -> None:
    integ = (await tenant.api.post("/v1/integrations", json={
        "name": "Twilio", "provider_kind": "channel", "provider_name": "twilio_sms",
        "config": {"base_url": twilio.base_url, "account_sid": ACCOUNT,
                   "from_number": "+15005550006"},
        "secrets": {"auth_token": TOKEN}})).json()
    public = integ["webhook_url"]
    assert public == PUBLIC_BASE_URL + await hook_path(http, integ["id"])
    assert not public.startswith(str(http.base_url))  # the request arrives elsewhere
    params = {"MessageSid": "SM7777", "SmsStatus": "received", "From": "+51900000000",
              "To": "+15005550006", "Body": "hola", "AccountSid": ACCOUNT, "NumMedia": "0"}
    await callback(http, public, params)
    internal = f"{http.base_url}{await hook_path(http, integ['id'])}".replace("//v1", "/v1")
    await callback(http, public, params, signed_url=internal, expect=401)
    r = await tenant.api.get(f"/v1/integrations/{integ['id']}/webhook-deliveries")
    assert [d["signature_valid"] for d in r.json()] == [True]
    r = await tenant.api.get(f"/v1/integrations/{integ['id']}/webhook-rejections")
    assert [(x["reason"], x["count"]) for x in r.json()] == [("bad_signature", 1)]


async def test_twilio_sms_to_delivered_then_baja(
    tenant: TenantClient, http: Any, twilio: FakeHTTPServer,
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    integ = (await tenant.api.post("/v1/integrations", json={
        "name": "Twilio", "provider_kind": "channel", "provider_name": "twilio_sms",
        "config": {"base_url": twilio.base_url, "account_sid": ACCOUNT,
                   "from_number": "+15005550006"},
        "secrets": {"auth_token": TOKEN}})).json()
    template = (await tenant.api.post("/v1/templates", json=SMS)).json()
    debtor = await debtor_with_debt(tenant)
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integ["id"], "template_id": template["id"]})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    [request] = twilio.requests_to("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    form = request.form()
    assert form["To"] == ["+51987654321"] and form["Body"][0].startswith("Hola Rosa")
    status_url = form["StatusCallback"][0]
    assert status_url.startswith(PUBLIC_BASE_URL + await hook_path(http, integ["id"]))
    row = (await tenant.api.get(f"/v1/interactions/{sent.json()['id']}")).json()
    assert (row["status"], row["provider_message_id"]) == ("sent", "SM0001")

    for state in ("sent", "delivered", "delivered"):  # Twilio retries: duplicates are fine
        await callback(http, status_url, {"MessageSid": "SM0001", "MessageStatus": state,
                                          "AccountSid": ACCOUNT, "To": "+51987654321"})
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent.json()['id']}")).json()
    assert row["status"] == "delivered"

    inbound_url = integ["webhook_url"]
    await callback(http, inbound_url, {"MessageSid": "SM9999", "SmsStatus": "received",
                                       "From": "+51987654321", "To": "+15005550006",
                                       "Body": "Baja", "AccountSid": ACCOUNT, "NumMedia": "0"})
    await run_jobs()
    refused = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integ["id"], "template_id": template["id"]})
    assert (refused.status_code, refused.json()["reasons"][0]["code"]) == (422, "opted_out")
