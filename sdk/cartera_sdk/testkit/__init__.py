"""The Cartera plugin test kit (needs pytest).

Installed as a pytest plugin through the ``pytest11`` entry point, so the
``fake_http_server``, ``fake_host`` and ``frozen_clock`` fixtures are available in any
project that has ``cartera-sdk`` installed. Conformance suites live in
:mod:`cartera_sdk.testkit.conformance`.
"""

from __future__ import annotations

from .conformance import (
    ChannelConformance,
    CompliancePackConformance,
    ErpConnectorConformance,
)
from .fakeserver import FakeHTTPServer, FakeResponse, RecordedRequest, json_response
from .host import RECEIVED_AT, FakeHost, FrozenClock, as_received, run
from .payment_conformance import PaymentProviderConformance

__all__ = [
    "RECEIVED_AT",
    "ChannelConformance",
    "CompliancePackConformance",
    "ErpConnectorConformance",
    "FakeHTTPServer",
    "FakeHost",
    "FakeResponse",
    "FrozenClock",
    "PaymentProviderConformance",
    "RecordedRequest",
    "as_received",
    "json_response",
    "run",
]
