"""Mercado Pago wire shapes (protocols.md section 4) and the money codec.

Money. Mercado Pago writes amounts as JSON *numbers* (``"unit_price": 75.76``). We never let
them become floats: responses are decoded by msgspec straight into ``Decimal`` fields, which
msgspec parses from the number's own digits (``58.80`` -> ``Decimal("58.80")``, no binary
rounding), and requests are encoded with ``decimal_format="number"``, which writes the
Decimal's exact digits as a JSON number (``Decimal("5.10")`` -> ``5.10``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec
from cartera_sdk import Money, PermanentError
from cartera_sdk.money import minor_units
from cartera_sdk.payments import PaymentStatus, RefundStatus

__all__ = [
    "ENCODER",
    "ErrorBody",
    "Notification",
    "Payment",
    "Preference",
    "Refund",
    "money",
    "parse_time",
    "payment_status",
    "refund_status",
]

ENCODER = msgspec.json.Encoder(decimal_format="number")

_PAYMENT_STATUSES: frozenset[str] = frozenset(
    {"pending", "in_process", "authorized", "approved", "rejected", "cancelled",
     "refunded", "charged_back", "in_mediation"}
)  # fmt: skip
_REFUND_STATUSES: dict[str, RefundStatus] = {
    "approved": "approved",
    "pending": "pending",
    "in_process": "pending",
    "rejected": "rejected",
    "cancelled": "cancelled",
}


class Preference(msgspec.Struct, kw_only=True):
    """``POST /checkout/preferences`` response: the fields we use."""

    id: str
    init_point: str
    sandbox_init_point: str | None = None


class PaymentPayer(msgspec.Struct, kw_only=True):
    email: str | None = None


class TransactionDetails(msgspec.Struct, kw_only=True):
    net_received_amount: Decimal | None = None


class Payment(msgspec.Struct, kw_only=True):
    """``GET /v1/payments/{id}`` response: the fields we use."""

    id: int | str
    status: str
    currency_id: str
    transaction_amount: Decimal
    status_detail: str | None = None
    transaction_amount_refunded: Decimal | None = None
    external_reference: str | None = None
    payment_method_id: str | None = None
    date_created: str | None = None
    date_approved: str | None = None
    date_last_updated: str | None = None
    payer: PaymentPayer | None = None
    transaction_details: TransactionDetails | None = None


class Refund(msgspec.Struct, kw_only=True):
    """``POST /v1/payments/{id}/refunds`` response."""

    id: int | str
    payment_id: int | str
    amount: Decimal
    status: str | None = None
    date_created: str | None = None


class ErrorCause(msgspec.Struct, kw_only=True):
    code: int | str | None = None
    description: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    """``{"message", "error", "status", "cause": [{"code", "description"}]}``."""

    message: str | None = None
    error: str | None = None
    cause: list[ErrorCause] | None = None


class NotificationData(msgspec.Struct, kw_only=True):
    id: int | str | None = None


class Notification(msgspec.Struct, kw_only=True):
    """A webhook body (``id``, ``live_mode``, ``type``, ``action``, ``date_created``, ``data``)."""

    id: int | str | None = None
    live_mode: bool | None = None
    type: str | None = None
    action: str | None = None
    date_created: str | None = None
    data: NotificationData | None = None


def money(amount: Decimal, currency: str) -> Money:
    """``Money`` from a decoded amount at the currency's scale (``58.8`` -> ``58.80 PEN``,
    ``1E+2`` -> ``100 CLP``), refusing an amount the currency cannot hold exactly."""
    try:
        scaled = amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
        if scaled != amount:
            raise ValueError(f"{amount} has more decimals than {currency} allows")
        return Money(scaled, currency)
    except (ValueError, ArithmeticError) as exc:
        raise PermanentError("unexpected_amount", str(exc)) from exc


def parse_time(value: str | None) -> datetime | None:
    """Mercado Pago's ISO 8601 instants (``2024-01-15T10:30:00.000-03:00``); ``None`` kept."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def payment_status(raw: str) -> PaymentStatus:
    """The SDK status for Mercado Pago's word; an unknown word is ``pending`` (nothing applied)."""
    if raw in _PAYMENT_STATUSES:
        return raw  # type: ignore[return-value]
    return "pending"


def refund_status(raw: str | None) -> RefundStatus:
    """The SDK refund status; unknown or missing words are ``pending``."""
    return _REFUND_STATUSES.get(raw or "", "pending")

