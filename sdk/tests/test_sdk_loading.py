"""Loading installed plugins: a broken one is reported and skipped, the others load."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from cartera_sdk import registry
from cartera_sdk.registry import load_entry_point_plugins, make_plugin_manager

MODULES = {
    "sdk_ep_exits": "import sys\nsys.exit('no')\n",
    "sdk_ep_raises": "raise ImportError('a dependency is missing')\n",
    "sdk_ep_misspelt": (
        "from cartera_sdk import hookimpl\n"
        "@hookimpl\ndef register_channel(register):\n    pass\n"
    ),
    "sdk_ep_good_one": (
        "from cartera_sdk import hookimpl\n"
        "@hookimpl\ndef register_channels(register):\n    register('one')\n"
    ),
    "sdk_ep_good_two": (
        "from cartera_sdk import hookimpl\n"
        "@hookimpl\ndef register_channels(register):\n    register('two')\n"
    ),
}


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name, source in MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    order = ["sdk_ep_exits", "sdk_ep_good_one", "sdk_ep_raises", "sdk_ep_misspelt",
             "sdk_ep_good_two"]  # fmt: skip
    points = [EntryPoint(name, name, "cartera") for name in order]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)
    return order


def _registered(pm: object) -> list[str]:
    found: list[str] = []
    pm.hook.register_channels(register=found.append)  # type: ignore[attr-defined]
    return sorted(found)


def test_broken_entry_points_are_reported_and_the_rest_load(installed: list[str]) -> None:
    pm = make_plugin_manager()
    failures = load_entry_point_plugins(pm)
    assert [(f.plugin, f.stage) for f in failures] == [
        ("sdk_ep_exits", "import"), ("sdk_ep_raises", "import"), ("sdk_ep_misspelt", "register"),
    ]  # fmt: skip
    assert "SystemExit: no" in failures[0].error
    assert _registered(pm) == ["one", "two"]
    assert pm.get_plugin("sdk_ep_misspelt") is None


def test_make_plugin_manager_with_entry_points_skips_broken_ones(
    installed: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    pm = make_plugin_manager(load_entrypoints=True)
    assert _registered(pm) == ["one", "two"]
    assert "sdk_ep_misspelt failed at register" in caplog.text
