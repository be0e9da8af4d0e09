"""Plugin discovery through real entry points, load-error isolation, guarded calls."""

from __future__ import annotations

import asyncio

import pytest
from cartera_sdk import hookimpl

from cartera.cli import main
from cartera.plugins.host import PluginCallError, PluginHost, PluginTimeout, load_host
from tests.conftest import TenantClient


def test_installed_plugin_is_discovered_and_broken_ones_are_reported() -> None:
    host = load_host()
    assert host.plugins["fixture"].distribution == "cartera-fixture-plugin"
    assert host.plugins["fixture"].version == "0.3.1"
    assert set(host.providers["channel"]) >= {"fixture_sms", "fixture_slow"}
    errors = {(e.plugin, e.stage) for e in host.errors}
    assert ("fixture_broken", "import") in errors
    assert ("fixture_crashing", "register_channels") in errors


def test_environment_variable_restricts_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTERA_PLUGINS", "fixture")
    host = load_host()
    assert list(host.plugins) == ["fixture"] and host.errors == []
    monkeypatch.setenv("CARTERA_PLUGINS", "")
    assert load_host().plugins == {}


def test_duplicate_provider_names_are_refused() -> None:
    host = load_host()

    class Dup:
        @staticmethod
        @hookimpl
        def register_channels(register):  # type: ignore[no-untyped-def]
            register(host.providers["channel"]["fixture_sms"].provider)

    host.add_plugin(Dup(), "dup")
    assert any(e.plugin == "dup" and "already registered" in e.error for e in host.errors)


async def test_calls_are_bounded_and_failures_wrapped() -> None:
    host = PluginHost(timeout_seconds=0.05)
    with pytest.raises(PluginTimeout):
        await host.call(asyncio.sleep(5), what="slow thing")

    async def boom() -> None:
        raise RuntimeError("secret detail")

    with pytest.raises(PluginCallError) as caught:
        await host.call(boom(), what="boom")
    assert "secret detail" not in caught.value.detail


async def test_plugins_endpoint_lists_providers_and_schemas_not_load_errors(
        tenant: TenantClient) -> None:
    body = (await tenant.api.get("/v1/plugins")).json()
    fixture = next(p for p in body["data"] if p["name"] == "fixture")
    sms = next(p for p in fixture["providers"] if p["name"] == "fixture_sms")
    assert sms["kind"] == "channel"
    assert sms["secret_fields"] == ["api_key", "verify_token", "webhook_secret"]
    assert sms["supports_test_connection"] is True
    assert "base_url" in str(sms["config_schema"])
    assert "errors" not in body
    assert "misconfigured plugin" not in str(body) and "fixture_broken" not in str(body)


def test_operators_see_load_errors_with_cartera_plugins(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "FAILED fixture_crashing at register_channels: RuntimeError: misconfigured plugin" \
        in out
    assert "channel/fixture_sms" in out
