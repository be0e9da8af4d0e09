"""A strict local fake of the Mercado Pago endpoints the plugin uses, on ``FakeHTTPServer``.

It fails requests the way the real API does (protocols.md section 4), and stricter where
the reference leaves a gap:

* every call needs ``Authorization: Bearer <access token>`` (else 401);
* every POST needs ``Content-Type: application/json`` and an ``X-Idempotency-Key`` of 1-64
  characters (else 400, cause ``4292``); a key seen before with the same body replays the
  first answer (nothing is created twice), with another body answers 400;
* ``POST /checkout/preferences``: only the documented keys (a misspelt or unknown key is a
  400), ``items`` with ``title``, an integer ``quantity`` >= 1, a JSON *number*
  ``unit_price`` > 0 with no more decimals than ``currency_id`` allows; ``payer``,
  ``back_urls``, ``auto_return`` (needs ``back_urls.success``), ``expires`` with
  ``expiration_date_from`` < ``expiration_date_to`` in ``yyyy-MM-ddTHH:mm:ss.SSS±hh:mm``;
  answers 201 with ``id``, ``init_point``, ``sandbox_init_point``;
* ``GET /v1/payments/{id}``: the stored payment, amounts as JSON numbers; unknown ids 404
  (cause ``2000``); ``GET /v1/payments/search``: an empty page;
* ``POST /v1/payments/{id}/refunds``: ``{}`` (full) or ``{"amount": <number>}`` only;
  positive numeric amounts (``4040``/``4041``), approved payments only (``2063``), not
  already refunded (``4296``), not beyond what remains; updates the payment
  (``partially_refunded`` / ``refunded``) and answers 201.

``fail(route, *responses)`` queues canned answers (5xx, 429...) for the next calls of a
route. :func:`signed_notification` builds a webhook as Mercado Pago signs it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from cartera_sdk import WebhookRequest
from cartera_sdk.money import minor_units
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest

ACCESS_TOKEN = "APP_USR-7434000000000000-031400-0000000000000000000000000000000-123456789"
WEBHOOK_SECRET = "test_webhook_secret"
COLLECTOR_ID = 843382748
WEBHOOK_URL = "https://cartera.example/v1/hooks/int_test"

PREFERENCE_KEYS = {
    "items", "payer", "back_urls", "auto_return", "payment_methods", "notification_url",
    "statement_descriptor", "external_reference", "expires", "expiration_date_from",
    "expiration_date_to", "date_of_expiration", "metadata",
}  # fmt: skip
ITEM_KEYS = {
    "id", "title", "currency_id", "picture_url", "description", "category_id", "quantity",
    "unit_price",
}  # fmt: skip
PAYER_KEYS = {"name", "surname", "email", "phone", "identification", "address"}
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_PAYMENT_PATH = re.compile(r"/v1/payments/(\d+)")
_REFUND_PATH = re.compile(r"/v1/payments/(\d+)/refunds")


class Reject(Exception):
    """A validation failure, answered with Mercado Pago's error body."""

    def __init__(self, status: int, message: str, cause: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.cause = status, message, cause


def mp_error(status: int, message: str, cause: int | None = None) -> FakeResponse:
    """``{"message", "error", "status", "cause": [...]}`` (protocols.md 4.1)."""
    error = {400: "bad_request", 401: "unauthorized", 404: "not_found"}.get(status, "error")
    causes = [{"code": cause, "description": message}] if cause is not None else []
    return FakeResponse(
        status,
        _ENCODER.encode({"message": message, "error": error, "status": status, "cause": causes}),
        {"Content-Type": "application/json", "x-request-id": "fake-req-1"},
    )


def _json(status: int, body: Any) -> FakeResponse:
    return FakeResponse(status, _ENCODER.encode(body), {"Content-Type": "application/json"})


def _keys(obj: Any, where: str, allowed: set[str], required: Collection[str] = ()) -> None:
    if not isinstance(obj, dict):
        raise Reject(400, f"{where} must be an object")
    unknown = set(obj) - allowed
    if unknown:
        raise Reject(400, f"{where}: unknown field(s) {sorted(unknown)}")
    missing = set(required) - set(obj)
    if missing:
        raise Reject(400, f"{where}: missing field(s) {sorted(missing)}")


def _amount(value: Any, where: str, currency: str) -> Decimal:
    """A JSON number (decoded as Decimal), positive, within the currency's decimals."""
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        raise Reject(400, f"{where} must be a number", 4041)
    amount = Decimal(value)
    if amount <= 0:
        raise Reject(400, f"{where} must be positive", 4040)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > minor_units(currency) and amount != round(amount, minor_units(currency)):
        raise Reject(400, f"{where} has too many decimals for {currency}")
    return amount


def sign(secret: str, data_id: str | None, request_id: str | None, ts: str) -> str:
    """``ts=<ts>,v1=<hex HMAC-SHA256 of the manifest>``, as Mercado Pago sends it."""
    manifest = ""
    if data_id:
        manifest += f"id:{data_id.lower()};"
    if request_id:
        manifest += f"request-id:{request_id};"
    manifest += f"ts:{ts};"
    digest = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


def signed_notification(
    payment_id: str,
    *,
    ts: str,
    secret: str = WEBHOOK_SECRET,
    request_id: str = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e",
    notification_id: int = 112233445566,
    action: str = "payment.updated",
    topic: str = "payment",
) -> WebhookRequest:
    """A payment notification as delivered: query ``data.id``/``type``, JSON body, signed."""
    body = {
        "id": notification_id, "live_mode": True, "type": topic,
        "date_created": "2026-03-02T12:00:00.000-03:00", "application_id": 1234567890,
        "user_id": COLLECTOR_ID, "version": 1, "api_version": "v1", "action": action,
        "data": {"id": payment_id},
    }  # fmt: skip
    return WebhookRequest(
        method="POST",
        url=f"{WEBHOOK_URL}?data.id={payment_id}&type={topic}",
        headers={
            "Content-Type": "application/json",
            "x-request-id": request_id,
            "x-signature": sign(secret, payment_id, request_id, ts),
        },
        body=json.dumps(body).encode(),
    )


class FakeMercadoPago:
    """The fake's state: preferences, payments, refunds and idempotency keys."""

    def __init__(self, server: FakeHTTPServer, *, access_token: str = ACCESS_TOKEN) -> None:
        self.server = server
        self.access_token = access_token
        self.preferences: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, list[dict[str, Any]]] = {}
        self._seen: dict[tuple[str, str], tuple[bytes, FakeResponse]] = {}
        self._failures: dict[str, list[FakeResponse]] = {}
        self._ids = itertools.count(1091618291)

    def install(self) -> FakeMercadoPago:
        """Route the endpoints on the server."""
        self.server.route("POST", "/checkout/preferences", self._guard("preference", True,
                                                                       self._create_preference))
        self.server.route("GET", "/v1/payments/search", self._guard("search", False,
                                                                    self._search))
        self.server.route("GET", _PAYMENT_PATH, self._guard("payment", False, self._payment))
        self.server.route("POST", _REFUND_PATH, self._guard("refund", True, self._refund))
        return self

    def fail(self, route: str, *responses: FakeResponse) -> None:
        """Answer the next calls of ``route`` (preference/payment/refund/search) with these."""
        self._failures.setdefault(route, []).extend(responses)

    def add_payment(
        self,
        payment_id: str,
        amount: str,
        currency: str = "PEN",
        *,
        status: str = "approved",
        status_detail: str = "accredited",
        external_reference: str | None = "plink_1",
    ) -> dict[str, Any]:
        """Store a payment (``amount`` as text: the wire gets exactly those digits)."""
        payment = {
            "id": int(payment_id), "date_created": "2026-03-02T11:59:00.000-03:00",
            "date_approved": "2026-03-02T11:59:01.000-03:00" if status == "approved" else None,
            "date_last_updated": "2026-03-02T11:59:01.000-03:00",
            "operation_type": "regular_payment", "payment_method_id": "visa",
            "payment_type_id": "credit_card", "status": status, "status_detail": status_detail,
            "currency_id": currency, "description": "Deuda", "transaction_amount": Decimal(amount),
            "transaction_amount_refunded": Decimal(0), "captured": True,
            "external_reference": external_reference, "notification_url": WEBHOOK_URL,
            "payer": {"id": "123456789", "email": "deudor@example.pe", "type": "customer"},
            "metadata": {},
            "transaction_details": {
                "net_received_amount": round(Decimal(amount) * Decimal("0.96"), 2),
                "total_paid_amount": Decimal(amount),
            },
        }  # fmt: skip
        self.payments[payment_id] = payment
        return payment

    # ------------------------------------------------------------------ checks

    def _guard(
        self,
        route: str,
        mutating: bool,
        handler: Callable[[RecordedRequest, Any], FakeResponse],
    ) -> Callable[[RecordedRequest], FakeResponse]:
        def handle(request: RecordedRequest) -> FakeResponse:
            if self._failures.get(route):
                return self._failures[route].pop(0)
            if request.headers.get("authorization") != f"Bearer {self.access_token}":
                return mp_error(401, "invalid access token")
            try:
                body = self._body(request) if mutating else None
                if not mutating:
                    return handler(request, body)
                key = self._idempotency_key(request)
                seen = self._seen.get((route, key))
                if seen is not None:
                    if seen[0] != request.body:
                        raise Reject(400, "X-Idempotency-Key reused with another body")
                    return seen[1]
                response = handler(request, body)
                if response.status < 300:
                    self._seen[(route, key)] = (request.body, response)
                return response
            except Reject as exc:
                return mp_error(exc.status, exc.message, exc.cause)

        return handle

    @staticmethod
    def _body(request: RecordedRequest) -> Any:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise Reject(400, "Content-Type must be application/json")
        try:
            return json.loads(request.body, parse_float=Decimal)
        except ValueError as exc:
            raise Reject(400, "malformed JSON body") from exc

    @staticmethod
    def _idempotency_key(request: RecordedRequest) -> str:
        key = request.headers.get("x-idempotency-key", "")
        if not 1 <= len(key) <= 64:
            raise Reject(400, "Header X-Idempotency-Key can't be null", 4292)
        return key

    # ------------------------------------------------------------------ endpoints

    def _create_preference(self, request: RecordedRequest, body: Any) -> FakeResponse:
        _keys(body, "preference", PREFERENCE_KEYS, {"items"})
        items = body["items"]
        if not isinstance(items, list) or not items:
            raise Reject(400, "items must be a non-empty list")
        for index, item in enumerate(items):
            where = f"items[{index}]"
            _keys(item, where, ITEM_KEYS, {"title", "quantity", "unit_price", "currency_id"})
            if not isinstance(item["quantity"], int) or item["quantity"] < 1:
                raise Reject(400, f"{where}.quantity must be a positive integer")
            _amount(item["unit_price"], f"{where}.unit_price", str(item["currency_id"]))
        if "payer" in body:
            _keys(body["payer"], "payer", PAYER_KEYS)
            if "phone" in body["payer"]:
                _keys(body["payer"]["phone"], "payer.phone", {"area_code", "number"}, {"number"})
            if "identification" in body["payer"]:
                _keys(body["payer"]["identification"], "payer.identification",
                      {"type", "number"}, {"type", "number"})  # fmt: skip
        if "back_urls" in body:
            _keys(body["back_urls"], "back_urls", {"success", "failure", "pending"})
        if body.get("auto_return") is not None and "success" not in body.get("back_urls", {}):
            raise Reject(400, "auto_return invalid. back_url.success must be defined")
        self._check_expiry(body)
        ref = body.get("external_reference")
        if ref is not None and (not isinstance(ref, str) or len(ref) > 256):
            raise Reject(400, "external_reference must be a string of up to 256 characters")
        pref_id = f"{COLLECTOR_ID}-{hashlib.sha256(request.body).hexdigest()[:32]}"
        self.preferences[pref_id] = body
        return _json(201, {
            "id": pref_id, "collector_id": COLLECTOR_ID, "items": items,
            "external_reference": ref, "expires": body.get("expires", False),
            "init_point": f"https://www.mercadopago.com.pe/checkout/v1/redirect?pref_id={pref_id}",
            "sandbox_init_point":
                f"https://sandbox.mercadopago.com.pe/checkout/v1/redirect?pref_id={pref_id}",
            "date_created": "2026-03-02T12:00:00.000-03:00",
        })  # fmt: skip

    @staticmethod
    def _check_expiry(body: dict[str, Any]) -> None:
        dates = ("expiration_date_from", "expiration_date_to", "date_of_expiration")
        for name in dates:
            if name in body and not _INSTANT.match(str(body[name])):
                raise Reject(400, f"{name} must be yyyy-MM-ddTHH:mm:ss.SSSz")
        if body.get("expires") is True:
            if "expiration_date_to" not in body:
                raise Reject(400, "expires needs expiration_date_to")
            if "expiration_date_from" in body and (
                _instant(body["expiration_date_from"]) >= _instant(body["expiration_date_to"])
            ):
                raise Reject(400, "expiration_date_from must precede expiration_date_to")

    def _search(self, request: RecordedRequest, body: Any) -> FakeResponse:
        return _json(200, {"paging": {"total": 0, "limit": 1, "offset": 0}, "results": []})

    def _payment(self, request: RecordedRequest, body: Any) -> FakeResponse:
        match = _PAYMENT_PATH.fullmatch(request.path)
        payment = self.payments.get(match.group(1)) if match else None
        if payment is None:
            raise Reject(404, "Payment not found", 2000)
        return _json(200, payment)

    def _refund(self, request: RecordedRequest, body: Any) -> FakeResponse:
        match = _REFUND_PATH.fullmatch(request.path)
        payment_id = match.group(1) if match else ""
        payment = self.payments.get(payment_id)
        if payment is None:
            raise Reject(404, "Payment not found", 2000)
        _keys(body, "refund", {"amount"})
        remaining = payment["transaction_amount"] - payment["transaction_amount_refunded"]
        if payment["status"] == "refunded" or remaining <= 0:
            raise Reject(400, "Charge already refunded", 4296)
        if payment["status"] != "approved":
            raise Reject(400, "Action not allowed for the current payment state", 2063)
        amount = (
            _amount(body["amount"], "amount", payment["currency_id"])
            if "amount" in body else remaining
        )  # fmt: skip
        if amount > remaining:
            raise Reject(400, "The refund amount exceeds the refundable amount")
        payment["transaction_amount_refunded"] += amount
        fully = payment["transaction_amount_refunded"] == payment["transaction_amount"]
        payment["status"] = "refunded" if fully else "approved"
        payment["status_detail"] = "refunded" if fully else "partially_refunded"
        refund = {
            "id": next(self._ids), "payment_id": int(payment_id), "amount": amount,
            "date_created": "2026-03-02T12:05:00.000-03:00", "status": "approved",
            "refund_mode": "standard",
            "source": {"id": "123456789", "name": "Cartera", "type": "collector"},
        }  # fmt: skip
        self.refunds.setdefault(payment_id, []).append(refund)
        return _json(201, refund)


def _instant(value: str) -> str:
    """Comparable form of an instant string (UTC ISO)."""
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()
