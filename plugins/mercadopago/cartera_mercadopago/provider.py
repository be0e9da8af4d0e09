"""The Mercado Pago payment provider (Checkout Pro, Payments and Refunds APIs, webhooks)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
from cartera_sdk import (
    ConnectionCheck,
    PermanentError,
    ProviderContext,
    ProviderError,
    RateLimitedError,
    RetryableError,
    WebhookRequest,
    WebhookVerificationError,
    signatures,
)
from cartera_sdk.http import parse_retry_after
from cartera_sdk.payments import (
    BasePaymentProvider,
    Payer,
    PaymentEvent,
    PaymentEventKind,
    PaymentLink,
    PaymentLinkRequest,
    ProviderPayment,
    Refund,
    RefundRequest,
)

from . import _wire

__all__ = [
    "CAUSE_CODES",
    "MercadoPago",
    "MercadoPagoConfig",
    "MercadoPagoSecrets",
    "idempotency_key",
    "provider_error",
]

HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

#: Mercado Pago ``cause`` codes (protocols.md 4.4) and the stable ``ProviderError.code``
#: we raise for them. Others get a code from the HTTP status.
CAUSE_CODES: dict[str, str] = {
    "2000": "payment_not_found",
    "2024": "payment_too_old",
    "15016": "payment_too_old",
    "2032": "refund_not_found",
    "2063": "invalid_payment_state",
    "3024": "partial_refund_unsupported",
    "4040": "invalid_amount",
    "4041": "invalid_amount",
    "4292": "idempotency_key_missing",
    "4296": "already_refunded",
}
_STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}
_KINDS: dict[str, PaymentEventKind] = {
    "payment": "payment",
    "chargebacks": "chargeback",
    "order": "order",
}
_MAX_IDEMPOTENCY_KEY = 64


class MercadoPagoConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Non-secret settings of one Mercado Pago account.

    ``signature_tolerance_seconds``: how old (or, up to 60 s, how far ahead) a webhook's
    signed ``ts`` may be. ``statement_descriptor``: the text on the payer's card statement.
    """

    base_url: HttpUrl = "https://api.mercadopago.com"
    signature_tolerance_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 300
    statement_descriptor: NonEmpty | None = None


class MercadoPagoSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The account's access token and the webhook signing secret ("Your integrations")."""

    access_token: NonEmpty
    webhook_secret: NonEmpty


def idempotency_key(key: str) -> str:
    """The ``X-Idempotency-Key`` for our key: as is when 1-64 printable ASCII characters,
    else its SHA-256 hex (64 characters), so the same operation always sends the same key."""
    if 0 < len(key) <= _MAX_IDEMPOTENCY_KEY and key.isascii() and key.isprintable():
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _payer(payer: Payer) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if payer.name:
        body["name"] = payer.name
    if payer.email:
        body["email"] = payer.email
    if payer.phone:
        body["phone"] = {"number": payer.phone}
    if payer.document_type and payer.document_number:
        body["identification"] = {"type": payer.document_type, "number": payer.document_number}
    return body


def _instant(value: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSS±hh:mm`` (protocols.md 4.2)."""
    return value.isoformat(timespec="milliseconds")


def _cause_code(body: _wire.ErrorBody | None) -> str | None:
    for cause in (body.cause if body else None) or []:
        if cause.code is not None and str(cause.code) in CAUSE_CODES:
            return CAUSE_CODES[str(cause.code)]
    return None


def _error_reason(body: _wire.ErrorBody | None, status: int) -> str:
    if body is None:
        return f"HTTP {status}"
    causes = "; ".join(
        f"{c.code}: {c.description}" for c in body.cause or [] if c.code is not None
    )
    return " | ".join(part for part in (body.message, causes) if part) or f"HTTP {status}"


def provider_error(response: httpx.Response) -> ProviderError:
    """The classified error for a non-2xx Mercado Pago response.

    429 is ``rate_limited`` (with ``Retry-After``), 5xx ``retryable``, any other status
    ``permanent``; the code comes from the ``cause`` codes of :data:`CAUSE_CODES` first,
    then the status (``unauthorized``, ``forbidden``, ``not_found``, ``invalid_request``).
    """
    status = response.status_code
    try:
        body: _wire.ErrorBody | None = msgspec.json.decode(response.content, type=_wire.ErrorBody)
    except msgspec.DecodeError:
        body = None
    reason = _error_reason(body, status)
    if status == 429:
        return RateLimitedError(
            "rate_limited",
            reason,
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
            status_code=status,
        )
    if status >= 500:
        return RetryableError("provider_unavailable", reason, status_code=status)
    code = _cause_code(body) or _STATUS_CODES.get(status, "invalid_request")
    return PermanentError(code, reason, status_code=status)


class MercadoPago(BasePaymentProvider):
    """Mercado Pago for one account: Checkout Pro links, payment lookups, refunds, webhooks."""

    name: ClassVar[str] = "mercadopago"
    currencies: ClassVar[frozenset[str]] = frozenset(
        {"ARS", "BRL", "CLP", "COP", "MXN", "PEN", "UYU"}
    )
    Config: ClassVar[type[msgspec.Struct]] = MercadoPagoConfig
    Secrets: ClassVar[type[msgspec.Struct]] = MercadoPagoSecrets

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _settings(
        ctx: ProviderContext[Any, Any],
    ) -> tuple[MercadoPagoConfig, MercadoPagoSecrets]:
        config, secrets = ctx.config, ctx.secrets
        if not isinstance(config, MercadoPagoConfig) or not isinstance(
            secrets, MercadoPagoSecrets
        ):
            raise TypeError("ctx.config/ctx.secrets must be MercadoPagoConfig/MercadoPagoSecrets")
        return config, secrets

    async def _call(
        self,
        ctx: ProviderContext[Any, Any],
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> bytes:
        """One API call through the host's client; the 2xx body or a classified error."""
        config, secrets = self._settings(ctx)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["X-Idempotency-Key"] = idempotency_key(key)
        content = _wire.ENCODER.encode(body) if body is not None else None
        try:
            async with ctx.http(
                config.base_url.rstrip("/"),
                headers={"Authorization": f"Bearer {secrets.access_token}"},
            ) as client:
                response = await client.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise RetryableError("transport", type(exc).__name__) from exc
        if response.is_success:
            return response.content
        error = provider_error(response)
        ctx.logger.warning(
            "mercadopago call failed",
            extra={"path": path, "status": response.status_code, "code": error.code,
                   "mp_request_id": response.headers.get("x-request-id")},
        )  # fmt: skip
        raise error

    @staticmethod
    def _decode(content: bytes, kind: type[Any]) -> Any:
        try:
            return msgspec.json.decode(content, type=kind)
        except msgspec.DecodeError as exc:
            raise RetryableError("unexpected_response", str(exc)) from exc

    # ------------------------------------------------------------------ links

    def _preference(
        self, request: PaymentLinkRequest, ctx: ProviderContext[Any, Any]
    ) -> dict[str, Any]:
        """The preference body: a pure function of ``request`` and the account's config (no
        clock, no randomness), so every retry of one link sends the same bytes under the same
        ``X-Idempotency-Key`` and Mercado Pago answers it with the preference it made."""
        config, _ = self._settings(ctx)
        body: dict[str, Any] = {
            "items": [{
                "id": request.reference,
                "title": request.description,
                "quantity": 1,
                "unit_price": request.amount.amount,
                "currency_id": request.amount.currency,
            }],
            "external_reference": request.reference,
        }  # fmt: skip
        notification_url = request.notification_url or ctx.webhook_url
        if notification_url:
            body["notification_url"] = notification_url
        if request.payer is not None and (payer := _payer(request.payer)):
            body["payer"] = payer
        back_urls = {
            name: url
            for name, url in (("success", request.success_url), ("failure", request.failure_url),
                              ("pending", request.pending_url))
            if url
        }  # fmt: skip
        if back_urls:
            body["back_urls"] = back_urls
            if "success" in back_urls:
                body["auto_return"] = "approved"
        if request.expires_at is not None:
            # No ``expiration_date_from``: a preference is valid from its creation, and any
            # instant taken here (now) would change the body of a retry under the same key.
            body["expires"] = True
            body["expiration_date_to"] = _instant(request.expires_at)
            body["date_of_expiration"] = _instant(request.expires_at)
        if config.statement_descriptor:
            body["statement_descriptor"] = config.statement_descriptor
        if request.metadata:
            body["metadata"] = dict(request.metadata)
        return body

    async def create_payment_link(
        self, request: PaymentLinkRequest, ctx: ProviderContext[Any, Any]
    ) -> PaymentLink:
        """``POST /checkout/preferences`` with ``external_reference`` = ``request.reference``,
        ``X-Idempotency-Key`` from ``request.idempotency_key``, the notification URL (the
        request's, else ``ctx.webhook_url``), payer, back URLs and expiry; the link is the
        preference's ``init_point``. Retries of one request send byte-identical bodies (see
        :meth:`_preference`)."""
        if request.amount.currency not in self.currencies:
            raise PermanentError(
                "unsupported_currency", f"Mercado Pago does not charge {request.amount.currency}"
            )
        if request.expires_at is not None and request.expires_at <= ctx.clock.now():
            raise PermanentError("invalid_expiry", "expires_at is not in the future")
        content = await self._call(
            ctx, "POST", "/checkout/preferences",
            body=self._preference(request, ctx), key=request.idempotency_key,
        )  # fmt: skip
        preference: _wire.Preference = self._decode(content, _wire.Preference)
        return PaymentLink(
            provider_link_id=preference.id,
            url=preference.init_point,
            sandbox_url=preference.sandbox_init_point,
            expires_at=request.expires_at,
        )

    # ------------------------------------------------------------------ payments

    async def fetch_payment(
        self, provider_payment_id: str, ctx: ProviderContext[Any, Any]
    ) -> ProviderPayment:
        """``GET /v1/payments/{id}``: the payment as Mercado Pago reports it now.

        Payment ids are numeric; anything else is ``payment_not_found`` without a call.
        """
        if not provider_payment_id.isdigit():
            raise PermanentError("payment_not_found", "Mercado Pago payment ids are numeric")
        content = await self._call(ctx, "GET", f"/v1/payments/{provider_payment_id}")
        raw: _wire.Payment = self._decode(content, _wire.Payment)
        currency = raw.currency_id
        refunded = raw.transaction_amount_refunded
        net = raw.transaction_details.net_received_amount if raw.transaction_details else None
        return ProviderPayment(
            provider_payment_id=str(raw.id),
            status=_wire.payment_status(raw.status),
            raw_status=raw.status,
            status_detail=raw.status_detail,
            amount=_wire.money(raw.transaction_amount, currency),
            refunded_amount=_wire.money(refunded, currency) if refunded is not None else None,
            net_amount=_wire.money(net, currency) if net is not None else None,
            reference=raw.external_reference or None,
            method=raw.payment_method_id,
            payer_email=raw.payer.email if raw.payer else None,
            created_at=_wire.parse_time(raw.date_created),
            approved_at=_wire.parse_time(raw.date_approved),
            updated_at=_wire.parse_time(raw.date_last_updated),
        )

    # ------------------------------------------------------------------ refunds

    async def refund(self, request: RefundRequest, ctx: ProviderContext[Any, Any]) -> Refund:
        """``POST /v1/payments/{id}/refunds`` with ``X-Idempotency-Key``: ``{"amount": x}`` for
        a partial refund, ``{}`` for the full remaining amount.

        A full refund first fetches the payment: the refund response carries no currency.
        """
        if not request.provider_payment_id.isdigit():
            raise PermanentError("payment_not_found", "Mercado Pago payment ids are numeric")
        if request.amount is not None and request.amount.amount <= 0:
            raise PermanentError("invalid_amount", "a refund amount must be positive")
        if request.amount is not None:
            currency = request.amount.currency
        else:
            currency = (await self.fetch_payment(request.provider_payment_id, ctx)).amount.currency
        body = {"amount": request.amount.amount} if request.amount is not None else {}
        content = await self._call(
            ctx, "POST", f"/v1/payments/{request.provider_payment_id}/refunds",
            body=body, key=request.idempotency_key,
        )  # fmt: skip
        raw: _wire.Refund = self._decode(content, _wire.Refund)
        return Refund(
            provider_refund_id=str(raw.id),
            provider_payment_id=str(raw.payment_id),
            amount=_wire.money(raw.amount, currency),
            status=_wire.refund_status(raw.status),
            created_at=_wire.parse_time(raw.date_created),
        )

    # ------------------------------------------------------------------ webhooks

    @staticmethod
    def _notification(request: WebhookRequest) -> _wire.Notification:
        return msgspec.json.decode(request.body, type=_wire.Notification)

    async def verify_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> None:
        """Check ``x-signature`` (HMAC-SHA256 of ``id:<data.id>;request-id:<x-request-id>;
        ts:<ts>;`` with the webhook secret, constant-time) and the age of ``ts`` (seconds or
        milliseconds) against ``signature_tolerance_seconds``.

        ``data.id`` is taken from the query string, the part Mercado Pago signs; it is
        required, and a body naming another resource is refused (``resource_mismatch``).
        """
        config, secrets = self._settings(ctx)
        data_id = request.query_param("data.id")
        if not data_id:
            raise WebhookVerificationError("missing_resource_id", "no data.id query parameter")
        signatures.verify_mercadopago_signature(
            secrets.webhook_secret,
            request.header("x-signature"),
            request_id=request.header("x-request-id"),
            data_id=data_id,
            now=ctx.clock.now(),
            tolerance=config.signature_tolerance_seconds,
        )
        try:
            notification = self._notification(request)
        except msgspec.DecodeError as exc:
            raise WebhookVerificationError("malformed_body", "not a notification") from exc
        body_id = notification.data.id if notification.data else None
        if body_id is not None and str(body_id).lower() != data_id.lower():
            raise WebhookVerificationError("resource_mismatch", "body data.id is not the signed id")

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[PaymentEvent]:
        """One event per notification, named by the signed ``data.id``; no I/O.

        ``event_id`` is the notification ``id`` (Mercado Pago keeps it across redeliveries),
        else ``<type>:<data.id>:<x-request-id>``. ``type`` ``payment`` gives ``payment``
        events, ``chargebacks`` ``chargeback``, ``order`` ``order``, anything else ``other``.
        """
        notification = self._notification(request)
        body_id = notification.data.id if notification.data else None
        resource_id = request.query_param("data.id") or (
            str(body_id) if body_id is not None else None
        )
        kind_word = notification.type or request.query_param("type") or ""
        event_id = (
            str(notification.id)
            if notification.id is not None
            else f"{kind_word}:{resource_id}:{request.header('x-request-id')}"
        )
        return [
            PaymentEvent(
                event_id=event_id,
                kind=_KINDS.get(kind_word, "other"),
                action=notification.action or kind_word,
                resource_id=resource_id,
                occurred_at=_wire.parse_time(notification.date_created),
                live_mode=notification.live_mode,
            )
        ]

    # ------------------------------------------------------------------ health

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """``GET /v1/payments/search?limit=1``: the token works and reaches the account."""
        try:
            await self._call(ctx, "GET", "/v1/payments/search?limit=1")
        except ProviderError as exc:
            return ConnectionCheck(ok=False, detail=exc.reason or exc.code, code=exc.code)
        return ConnectionCheck(ok=True, detail="access token accepted")

