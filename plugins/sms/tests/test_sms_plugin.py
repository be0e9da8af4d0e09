"""The distribution: entry point, registration through a real plugin manager, schemas."""

from __future__ import annotations

from importlib.metadata import entry_points

from cartera_sdk import ENTRY_POINT_GROUP, integration_schema, secret_fields
from cartera_sdk.testkit import FakeHost

import cartera_sms


def test_entry_point_loads_the_plugin() -> None:
    (ep,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "sms"]
    assert ep.value == "cartera_sms"
    assert ep.load() is cartera_sms


def test_both_providers_register() -> None:
    host = FakeHost(cartera_sms)
    assert {"twilio_sms", "infobip_sms"} <= set(host.channels)
    assert all(host.channels[name].channel == "sms" for name in ("twilio_sms", "infobip_sms"))


def test_schemas_mark_secrets_write_only() -> None:
    for provider in (cartera_sms.TwilioSmsProvider(), cartera_sms.InfobipSmsProvider()):
        schema = integration_schema(provider)
        props = next(iter(schema["secrets"]["$defs"].values()))["properties"]
        assert props and all(p.get("writeOnly") for p in props.values())
        assert set(props) == secret_fields(provider)
    assert secret_fields(cartera_sms.TwilioSmsProvider()) == {
        "auth_token", "api_key_sid", "api_key_secret",
    }  # fmt: skip
