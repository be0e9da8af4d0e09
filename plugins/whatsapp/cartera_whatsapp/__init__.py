"""Cartera channel plugin for the WhatsApp Business Cloud API (Meta Graph API).

Registers one channel provider, ``whatsapp``. It imports only ``cartera_sdk`` (plus
``msgspec`` and ``httpx``), as every Cartera plugin must.
"""

from __future__ import annotations

from cartera_sdk import RegisterChannel, hookimpl

from .provider import (
    CUSTOMER_SERVICE_WINDOW,
    LAST_INBOUND_AT_KEY,
    WINDOW_OPEN_KEY,
    WhatsAppCloud,
    WhatsAppConfig,
    WhatsAppSecrets,
    window_open,
)

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "LAST_INBOUND_AT_KEY",
    "WINDOW_OPEN_KEY",
    "WhatsAppCloud",
    "WhatsAppConfig",
    "WhatsAppSecrets",
    "register_channels",
    "window_open",
]

__version__ = "0.1.0"


@hookimpl
def register_channels(register: RegisterChannel) -> None:
    """Register the WhatsApp Cloud API provider."""
    register(WhatsAppCloud())
