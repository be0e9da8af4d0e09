"""A broken plugin never stops the others from loading, whatever the path and the fault."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from itertools import zip_longest
from typing import Any

import pytest
from cartera_sdk import hookimpl

from cartera.plugins import host as host_module
from cartera.plugins.host import PluginHost, load_host
from tests.plugins.broken import faulty

BROKEN = {
    "broken_exiting": "tests.plugins.broken.exiting",
    "broken_misspelt": "tests.plugins.broken.misspelt",
    "broken_faulty": "tests.plugins.broken.faulty",
    "broken_missing": "tests.plugins.broken.does_not_exist",
}


@pytest.fixture
def interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed entry points with a broken plugin before, between and after them."""
    real = list(entry_points(group="cartera"))
    broken = [EntryPoint(name, value, "cartera") for name, value in BROKEN.items()]
    mixed = [ep for pair in zip_longest(broken, real) for ep in pair if ep is not None]
    assert mixed[0] in broken and len(real) > len(broken)
    monkeypatch.setattr(host_module, "entry_points", lambda group: mixed)
    monkeypatch.delenv("CARTERA_PLUGINS", raising=False)  # the suite's own selection


def _errors(host: PluginHost) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for e in host.errors:
        found.setdefault((e.plugin, e.stage), []).append(e.error)
    return found


def test_every_broken_entry_point_is_reported_and_every_sound_one_loads(
        interleaved: None) -> None:
    host = load_host()
    errors = _errors(host)
    assert set(host.providers["channel"]) >= {"fixture_sms", "fixture_slow", "whatsapp",
                                             "twilio_sms"}
    assert "fixture_ar" in host.providers["compliance"]
    assert "SystemExit" in errors[("broken_exiting", "import")][0]
    assert "ModuleNotFoundError" in errors[("broken_missing", "import")][0]
    assert "register_channel" in errors[("broken_misspelt", "register")][0]
    assert "broken_misspelt" not in host.plugins


def test_each_faulty_hook_is_isolated_and_nothing_half_registered(interleaved: None) -> None:
    host = load_host()
    errors = _errors(host)
    channel = " ".join(errors[("broken_faulty", "register_channels")])
    assert "name lookup explodes" in channel
    assert "'faulty_no_methods' lacks methods of the ChannelProvider protocol" in channel
    assert "'faulty_bad_config': Config is not a msgspec Struct" in channel
    assert "payment setup failed half-way" in errors[
        ("broken_faulty", "register_payment_providers")][0]
    assert "not async" in errors[("broken_faulty", "register_erp_connectors")][0]
    assert all(p.plugin != "broken_faulty" for p in host.providers["payment"].values())
    assert all(p.plugin != "broken_faulty" for p in host.providers["erp"].values())
    assert host.providers["compliance"]["faulty_pack"].plugin == "broken_faulty"
    assert [p.name for p in host.plugins["broken_faulty"].providers] == ["faulty_pack"]


def test_add_plugin_survives_several_broken_objects_in_a_row() -> None:
    host = PluginHost()

    class Exits:
        @staticmethod
        @hookimpl
        def register_channels(register: Any) -> None:
            raise SystemExit(3)

    class Misspelt:
        @staticmethod
        @hookimpl
        def register_chanels(register: Any) -> None: ...

    class NoRegisterArgument:
        @staticmethod
        @hookimpl
        def register_compliance_packs() -> None:
            raise AssertionError("called without register")

    for index, plugin in enumerate([Exits(), Misspelt(), NoRegisterArgument(), faulty]):
        host.add_plugin(plugin, f"p{index}")
    stages = {(e.plugin, e.stage) for e in host.errors}
    assert {("p0", "register_channels"), ("p1", "register"),
            ("p2", "register_compliance_packs")} <= stages
    assert list(host.providers["compliance"]) == ["faulty_pack"]
    assert list(host.plugins) == ["p0", "p2", "p3"]
