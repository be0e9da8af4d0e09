"""The payment provider conformance suite (:class:`PaymentProviderConformance`).

Subclass it in a ``test_*.py`` module (class name ``Test*``) and define the fixtures listed
in the class docstring; each ``test_*`` method checks one clause of the
:mod:`cartera_sdk.payments` contract, against your strict fake, and checks what reached
the fake, not only what the provider returned.
"""

from __future__ import annotations

from typing import Any, ClassVar, get_args

import msgspec
import pytest

from ..errors import ProviderError, WebhookVerificationError
from ..payments import (
    SETTLEMENT,
    PaymentEvent,
    PaymentLink,
    PaymentLinkRequest,
    PaymentProvider,
    PaymentStatus,
    ProviderPayment,
    Refund,
    RefundRequest,
    confirm_payment_event,
)
from ..webhooks import WebhookRequest
from .conformance import _CURRENCY, _ProviderChecks
from .fakeserver import FakeHTTPServer, RecordedRequest, json_response
from .host import FakeHost, as_received, run

__all__ = ["PaymentProviderConformance"]

_FAILURES = [(429, "rate_limited"), (500, "retryable"), (503, "retryable"),
             (400, "permanent"), (401, "permanent")]  # fmt: skip


def _carries(request: RecordedRequest, value: str) -> bool:
    """``value`` appears in the request: a header value, a query value or the body."""
    return (
        value in request.headers.values()
        or any(value in values for values in request.query.values())
        or value.encode("utf-8") in request.body
    )


def _idempotency_keys(requests: list[RecordedRequest]) -> list[set[str]]:
    """Per request, the values of its idempotency headers (any name containing the word)."""
    return [{v for k, v in r.headers.items() if "idempotency" in k} for r in requests]


class PaymentProviderConformance(_ProviderChecks):
    """Contract tests for a :class:`~cartera_sdk.payments.PaymentProvider`.

    Fixtures to define:

    * ``provider``, ``config``, ``secrets`` (``config`` points at ``fake_server``);
    * ``fake_server``: your strict :class:`FakeHTTPServer` fake, which knows
      ``known_payment_id`` and honours idempotency keys (a repeated key answers the first
      result, as the real APIs do);
    * ``payment_link_request``: a :class:`PaymentLinkRequest` the fake accepts;
    * ``known_payment_id``: a payment the fake holds (approved, refundable);
    * ``signed_webhook``: a genuinely signed notification about ``known_payment_id``,
      valid at the ``host`` fixture's clock.

    Optional: ``refund_request`` (a refund of ``known_payment_id``; enables the refund
    checks), ``unknown_payment_id`` (default ``"does-not-exist-0000"``; use an id of your
    provider's shape so the fake's not-found answer is exercised), ``create_link_route``
    (``("POST", "/path")`` of the link endpoint on ``fake_server``, enables the failure
    classification checks) and ``plugin``. Class settings: ``signs_body = False`` when the
    scheme signs a manifest, not the body (Mercado Pago); ``signature_tolerance_seconds``
    when signatures carry a timestamp (a webhook that much older is refused).
    """

    signature_tolerance_seconds: ClassVar[float | None] = None

    @pytest.fixture
    def refund_request(self) -> RefundRequest | None:
        """A refund of ``known_payment_id`` the fake accepts (``None`` skips refunds)."""
        return None

    @pytest.fixture
    def unknown_payment_id(self) -> str:
        """A payment id the fake does not know."""
        return "does-not-exist-0000"

    @pytest.fixture
    def create_link_route(self) -> tuple[str, str] | None:
        """``(method, path)`` of the link-creation endpoint on ``fake_server``."""
        return None

    # ------------------------------------------------------------------ shape

    def test_implements_protocol(self, provider: Any) -> None:
        assert isinstance(provider, PaymentProvider)
        assert provider.currencies
        assert all(_CURRENCY.match(c) for c in provider.currencies)

    def test_secrets_are_required(self, provider: Any) -> None:
        """An integration without credentials must not validate (no optional secrets)."""
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({}, provider.Secrets)

    def test_unknown_config_fields_are_rejected(self, provider: Any, config: Any) -> None:
        raw = msgspec.to_builtins(config)
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**raw, "no_such_setting": "x"}, provider.Config)

    # ------------------------------------------------------------------ links

    def test_create_payment_link(
        self,
        provider: Any,
        payment_link_request: PaymentLinkRequest,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        before = len(fake_server.requests)
        link = run(provider.create_payment_link(payment_link_request, ctx))
        assert isinstance(link, PaymentLink)
        assert link.provider_link_id
        assert link.url.startswith(("https://", "http://"))
        sent = fake_server.requests[before:]
        assert sent, "creating a link must call the provider"
        assert any(_carries(r, payment_link_request.reference) for r in sent), (
            "the provider must be given our reference, to match payments back"
        )

    def test_create_payment_link_sends_idempotency_key(
        self,
        provider: Any,
        payment_link_request: PaymentLinkRequest,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        """The same request twice sends the same key and gets the same link."""
        before = len(fake_server.requests)
        first = run(provider.create_payment_link(payment_link_request, ctx))
        second = run(provider.create_payment_link(payment_link_request, ctx))
        keys = _idempotency_keys(fake_server.requests[before:])
        assert all(keys), "every create call must carry an idempotency key header"
        assert keys[0] == keys[-1], "a retried create must reuse its idempotency key"
        assert first.provider_link_id == second.provider_link_id

    @pytest.mark.parametrize(("status", "kind"), _FAILURES)
    def test_create_payment_link_classifies_http_failures(
        self,
        provider: Any,
        payment_link_request: PaymentLinkRequest,
        ctx: Any,
        fake_server: FakeHTTPServer,
        create_link_route: tuple[str, str] | None,
        status: int,
        kind: str,
    ) -> None:
        if create_link_route is None:
            pytest.skip("define `create_link_route` to check failure classification")
        headers = {"Retry-After": "1"} if status == 429 else {}
        body = {"message": "conformance failure", "status": status, "cause": []}
        fake_server.route(*create_link_route, json_response(body, status, headers))
        with pytest.raises(ProviderError) as info:
            run(provider.create_payment_link(payment_link_request, ctx))
        assert info.value.kind == kind, f"HTTP {status} must be {kind}, got {info.value.kind}"
        assert info.value.code

    def test_unreachable_provider_is_retryable(
        self,
        provider: Any,
        payment_link_request: PaymentLinkRequest,
        known_payment_id: str,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        fake_server.stop()
        for call in (
            provider.create_payment_link(payment_link_request, ctx),
            provider.fetch_payment(known_payment_id, ctx),
        ):
            with pytest.raises(ProviderError) as info:
                run(call)
            assert info.value.kind == "retryable"

    # ------------------------------------------------------------------ payments

    def test_fetch_payment(
        self, provider: Any, known_payment_id: str, ctx: Any, fake_server: FakeHTTPServer
    ) -> None:
        before = len(fake_server.requests)
        payment = run(provider.fetch_payment(known_payment_id, ctx))
        assert isinstance(payment, ProviderPayment)
        assert len(fake_server.requests) > before, "fetch_payment must ask the provider"
        assert payment.provider_payment_id == known_payment_id
        assert payment.status in get_args(PaymentStatus)
        assert payment.settlement == SETTLEMENT[payment.status]
        assert payment.amount.currency in provider.currencies
        assert payment.amount.amount > 0

    def test_fetch_unknown_payment_raises_permanent(
        self, provider: Any, unknown_payment_id: str, ctx: Any, fake_server: FakeHTTPServer
    ) -> None:
        with pytest.raises(ProviderError) as info:
            run(provider.fetch_payment(unknown_payment_id, ctx))
        assert info.value.kind == "permanent"

    # ------------------------------------------------------------------ webhooks

    def test_parse_returns_events_with_ids(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        events = provider.parse_webhook(as_received(signed_webhook), ctx)
        assert events, "the signed webhook must yield events"
        assert all(isinstance(e, PaymentEvent) and e.event_id for e in events)
        ids = [e.event_id for e in events]
        assert len(ids) == len(set(ids)), "event ids must be unique within a delivery"
        assert provider.parse_webhook(signed_webhook, ctx) == events, "parse must be stable"

    def test_parse_is_only_a_hint(
        self,
        provider: Any,
        signed_webhook: WebhookRequest,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        """Parsing does no I/O and believes nothing: no event is born confirmed."""
        before = len(fake_server.requests)
        events = provider.parse_webhook(as_received(signed_webhook), ctx)
        assert len(fake_server.requests) == before, "parse_webhook must not call the provider"
        assert not any(e.confirmed for e in events)
        assert all(e.occurred_at is None or e.occurred_at.tzinfo for e in events)

    def test_confirm_refetches_the_payment(
        self,
        provider: Any,
        signed_webhook: WebhookRequest,
        known_payment_id: str,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        events = [e for e in provider.parse_webhook(signed_webhook, ctx) if e.kind == "payment"]
        assert events, "the signed webhook must be about a payment"
        before = len(fake_server.requests)
        confirmed = run(confirm_payment_event(provider, events[0], ctx))
        assert len(fake_server.requests) > before, "confirming must re-fetch from the provider"
        assert confirmed.payment is not None
        assert confirmed.payment.provider_payment_id == known_payment_id
        assert confirmed.event_id == events[0].event_id
        assert confirmed.payment == run(provider.fetch_payment(known_payment_id, ctx))

    def test_verify_rejects_stale_signature(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any, host: FakeHost
    ) -> None:
        if self.signature_tolerance_seconds is None:
            pytest.skip("set `signature_tolerance_seconds` when signatures carry a timestamp")
        host.clock.advance(self.signature_tolerance_seconds + 1)
        with pytest.raises(WebhookVerificationError):
            run(provider.verify_webhook(signed_webhook, ctx))

    # ------------------------------------------------------------------ refunds

    def _refund_or_skip(self, refund_request: RefundRequest | None) -> RefundRequest:
        if refund_request is None:
            pytest.skip("define `refund_request` to check refunds")
        return refund_request

    def test_refund(
        self,
        provider: Any,
        refund_request: RefundRequest | None,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        request = self._refund_or_skip(refund_request)
        before = len(fake_server.requests)
        refund = run(provider.refund(request, ctx))
        assert isinstance(refund, Refund)
        assert refund.provider_refund_id
        assert refund.provider_payment_id == request.provider_payment_id
        if request.amount is not None:
            assert refund.amount == request.amount
        sent = fake_server.requests[before:]
        assert any(r.method == "POST" for r in sent), "a refund must be posted to the provider"

    def test_refund_is_idempotent(
        self,
        provider: Any,
        refund_request: RefundRequest | None,
        ctx: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        """A retried refund (same key) refunds once: the provider answers the same refund."""
        request = self._refund_or_skip(refund_request)
        first = run(provider.refund(request, ctx))
        second = run(provider.refund(request, ctx))
        assert second.provider_refund_id == first.provider_refund_id
        posts = [r for r in fake_server.requests if r.method == "POST"]
        keys = _idempotency_keys(posts[-2:])
        assert keys[0], "a refund must carry an idempotency key header"
        assert keys[0] == keys[1], "a retried refund must reuse its key"

    # ------------------------------------------------------------------ secrets

    def test_secrets_never_logged(
        self,
        provider: Any,
        payment_link_request: PaymentLinkRequest,
        known_payment_id: str,
        unknown_payment_id: str,
        signed_webhook: WebhookRequest,
        ctx: Any,
        host: FakeHost,
        secrets: Any,
        fake_server: FakeHTTPServer,
    ) -> None:
        run(provider.create_payment_link(payment_link_request, ctx))
        run(provider.fetch_payment(known_payment_id, ctx))
        with pytest.raises(ProviderError):
            run(provider.fetch_payment(unknown_payment_id, ctx))
        run(provider.verify_webhook(signed_webhook, ctx))
        provider.parse_webhook(signed_webhook, ctx)
        assert host.leaked_secrets(secrets) == []
