"""The payment conformance suite through pytester: a good provider passes, breakers fail."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

TOY = '''
import itertools, json
from datetime import UTC, datetime
import httpx, msgspec, pytest
from cartera_sdk import Money, PaymentLinkRequest, RefundRequest, WebhookRequest, signatures
from cartera_sdk.errors import (PermanentError, RateLimitedError, RetryableError,
                                WebhookVerificationError)
from cartera_sdk.payments import (BasePaymentProvider, PaymentEvent, PaymentLink,
                                  ProviderPayment, Refund)
from cartera_sdk.testkit import (FakeHost, FakeHTTPServer, FrozenClock,
                                 PaymentProviderConformance, json_response)

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

class ToyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base_url: str = ""

class ToySecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    api_key: str
    signing_secret: str

def sign(secret, ts, body):
    return signatures.hmac_digest(secret, ts.encode() + b"." + body)

class Toy(BasePaymentProvider):
    name = "toy_pay"
    currencies = frozenset({"PEN"})
    Config = ToyConfig
    Secrets = ToySecrets

    async def _call(self, ctx, method, path, body=None, key=None):
        headers = {"Authorization": f"Bearer {ctx.secrets.api_key}"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            async with ctx.http(ctx.config.base_url) as client:
                r = await client.request(method, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise RetryableError("transport") from exc
        if r.status_code == 429:
            raise RateLimitedError("rate_limited")
        if r.status_code >= 500:
            raise RetryableError("unavailable")
        if r.status_code >= 400:
            raise PermanentError("rejected", status_code=r.status_code)
        return r.json()

    async def create_payment_link(self, request, ctx):
        data = await self._call(ctx, "POST", "/links", {"ref": request.reference,
                                "amount": str(request.amount.amount)}, request.idempotency_key)
        return PaymentLink(provider_link_id=data["id"], url=data["url"])

    async def fetch_payment(self, payment_id, ctx):
        data = await self._call(ctx, "GET", f"/payments/{payment_id}")
        return ProviderPayment(provider_payment_id=data["id"], status=data["status"],
                               amount=Money.of(data["amount"], "PEN"), reference=data["ref"])

    async def refund(self, request, ctx):
        data = await self._call(ctx, "POST", f"/payments/{request.provider_payment_id}/refunds",
                                {"amount": str(request.amount.amount)}, request.idempotency_key)
        return Refund(provider_refund_id=data["id"], status="approved",
                      provider_payment_id=request.provider_payment_id,
                      amount=Money.of(data["amount"], "PEN"))

    async def verify_webhook(self, request, ctx):
        ts, sig = request.header("X-Ts"), request.header("X-Sig")
        if not ts or not sig:
            raise WebhookVerificationError("missing_signature")
        if not signatures.constant_time_equals(sig, sign(ctx.secrets.signing_secret, ts,
                                                         request.body)):
            raise WebhookVerificationError("bad_signature")
        signatures.check_timestamp(ts, ctx.clock.now(), tolerance=300)

    def parse_webhook(self, request, ctx):
        body = json.loads(request.body)
        return [PaymentEvent(event_id=body["id"], kind="payment", action="updated",
                             resource_id=body["payment_id"])]

def keyed(store, make):
    """A POST endpoint that honours Idempotency-Key (without one, every call creates)."""
    def handle(request):
        key = request.headers.get("idempotency-key")
        if key is None:
            return json_response(make(request), 201)
        if key not in store:
            store[key] = make(request)
        return json_response(store[key], 201)
    return handle

class TestToy(PaymentProviderConformance):
    signature_tolerance_seconds = 300

    @pytest.fixture
    def host(self):
        return FakeHost(clock=FrozenClock(NOW))
    @pytest.fixture
    def fake_server(self):
        links, refunds, ids = {}, {}, itertools.count(1)
        with FakeHTTPServer() as server:
            server.route("POST", "/links", keyed(links, lambda r: {
                "id": f"L{next(ids)}", "url": "https://pay.example/L"}))
            server.route("GET", "/payments/P1", json_response(
                {"id": "P1", "status": "approved", "amount": "58.80", "ref": "r1"}))
            server.route("POST", "/payments/P1/refunds", keyed(refunds, lambda r: {
                "id": f"R{next(ids)}", **json.loads(r.body)}))
            yield server
    @pytest.fixture
    def provider(self): return Toy()
    @pytest.fixture
    def config(self, fake_server): return ToyConfig(base_url=fake_server.base_url)
    @pytest.fixture
    def secrets(self): return ToySecrets(api_key="k_live", signing_secret="whsec")
    @pytest.fixture
    def create_link_route(self): return ("POST", "/links")
    @pytest.fixture
    def payment_link_request(self):
        return PaymentLinkRequest(reference="r1", idempotency_key="r1:create",
                                  amount=Money.of("58.80", "PEN"), description="Deuda")
    @pytest.fixture
    def known_payment_id(self): return "P1"
    @pytest.fixture
    def refund_request(self):
        return RefundRequest(provider_payment_id="P1", idempotency_key="rf1",
                             amount=Money.of("8.80", "PEN"))
    @pytest.fixture
    def signed_webhook(self):
        body = b'{"id": "n1", "payment_id": "P1"}'
        ts = str(int(NOW.timestamp()))
        return WebhookRequest(method="POST", url="https://h.example/hook", body=body,
                              headers={"X-Ts": ts, "X-Sig": sign("whsec", ts, body)})
'''

BELIEVER = TOY + '''
async def believe(self, event, ctx):
    return msgspec.structs.replace(event, payment=ProviderPayment(
        provider_payment_id=event.resource_id, status="approved",
        amount=Money.of("58.80", "PEN")))
Toy.confirm_event = believe
'''


def _failed(result: pytest.RunResult) -> set[str]:
    return {line.split("::")[-1].split(" ")[0].split("[")[0]
            for line in result.outlines if line.startswith("FAILED")}  # fmt: skip


def test_good_payment_provider_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_toy=TOY)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=27, skipped=1)  # skipped: no `plugin` fixture


@pytest.mark.parametrize(
    ("source", "failing"),
    [(BELIEVER, {"test_confirm_refetches_the_payment"}),
     (TOY.replace("        if key:\n", "        if False:\n"),
      {"test_create_payment_link_sends_idempotency_key", "test_refund_is_idempotent"}),
     (TOY.replace("    api_key: str\n    signing_secret: str\n",
                  '    api_key: str = ""\n    signing_secret: str = ""\n'),
      {"test_secrets_are_required"}),
     (TOY.replace("forbid_unknown_fields=True):\n    base_url", "):\n    base_url"),
      {"test_unknown_config_fields_are_rejected"}),
     (TOY.replace("        signatures.check_timestamp(ts, ctx.clock.now(), tolerance=300)\n",
                  ""),
      {"test_verify_rejects_stale_signature"}),
     (TOY.replace("        if r.status_code >= 500:\n            raise RetryableError",
                  "        if r.status_code >= 500:\n            raise PermanentError"),
      {"test_create_payment_link_classifies_http_failures"})],
    ids=["believes-notifications", "no-idempotency-key", "optional-secrets",
         "unknown-config-accepted", "no-replay-window", "5xx-permanent"],
)  # fmt: skip
def test_contract_breakers_fail(
    pytester: pytest.Pytester, source: str, failing: set[str]
) -> None:
    assert source != TOY
    pytester.makepyfile(test_toy=source)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert _failed(result) == failing
