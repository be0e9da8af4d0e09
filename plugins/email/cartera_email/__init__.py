"""Cartera e-mail channel plugin: ``smtp`` (any SMTP relay) and ``sendgrid`` (v3 API).

Imports only :mod:`cartera_sdk` (plus its own dependencies), never the Cartera core.
"""

from __future__ import annotations

from cartera_sdk import hookimpl
from cartera_sdk.registry import RegisterChannel

from .sendgrid import SendGridConfig, SendGridProvider, SendGridSecrets
from .smtp import SmtpConfig, SmtpProvider, SmtpSecrets

__all__ = [
    "SendGridConfig",
    "SendGridProvider",
    "SendGridSecrets",
    "SmtpConfig",
    "SmtpProvider",
    "SmtpSecrets",
    "register_channels",
]

__version__ = "0.1.0"


@hookimpl
def register_channels(register: RegisterChannel) -> None:
    """Register both e-mail providers."""
    register(SmtpProvider())
    register(SendGridProvider())
