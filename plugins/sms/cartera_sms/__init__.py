"""Cartera SMS channel plugin: ``twilio_sms`` (Twilio Programmable Messaging) and
``infobip_sms`` (Infobip SMS API v3).

Imports only :mod:`cartera_sdk` (plus its own dependencies), never the Cartera core.
"""

from __future__ import annotations

from cartera_sdk import hookimpl
from cartera_sdk.registry import RegisterChannel

from .infobip import InfobipSmsConfig, InfobipSmsProvider, InfobipSmsSecrets
from .twilio import TwilioSmsConfig, TwilioSmsProvider, TwilioSmsSecrets

__all__ = [
    "InfobipSmsConfig",
    "InfobipSmsProvider",
    "InfobipSmsSecrets",
    "TwilioSmsConfig",
    "TwilioSmsProvider",
    "TwilioSmsSecrets",
    "register_channels",
]

__version__ = "0.1.0"


@hookimpl
def register_channels(register: RegisterChannel) -> None:
    """Register both SMS providers."""
    register(TwilioSmsProvider())
    register(InfobipSmsProvider())
