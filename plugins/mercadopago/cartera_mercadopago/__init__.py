"""Cartera payment plugin for Mercado Pago (Checkout Pro, Payments, Refunds, webhooks).

Registers one payment provider, ``mercadopago``. It imports only ``cartera_sdk`` (plus
``msgspec`` and ``httpx``), as every Cartera plugin must.
"""

from __future__ import annotations

from cartera_sdk import RegisterPaymentProvider, hookimpl

from .provider import (
    CAUSE_CODES,
    MercadoPago,
    MercadoPagoConfig,
    MercadoPagoSecrets,
    idempotency_key,
    provider_error,
)

__all__ = [
    "CAUSE_CODES",
    "MercadoPago",
    "MercadoPagoConfig",
    "MercadoPagoSecrets",
    "idempotency_key",
    "provider_error",
    "register_payment_providers",
]

__version__ = "0.1.0"


@hookimpl
def register_payment_providers(register: RegisterPaymentProvider) -> None:
    """Register the Mercado Pago provider."""
    register(MercadoPago())
