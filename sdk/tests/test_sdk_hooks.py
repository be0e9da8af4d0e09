"""Hook machinery: plugin manager, register callbacks, async observers, FakeHost."""

from __future__ import annotations

import ast
import asyncio
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pluggy
import pytest
import sdk_sample_channel

from cartera_sdk import (
    Money,
    PaymentReceived,
    SegmentChanged,
    await_me_maybe,
    collect,
    hookimpl,
    make_plugin_manager,
)
from cartera_sdk.registry import collect_channels
from cartera_sdk.testkit import FakeHost, run

EVENT = PaymentReceived(
    event_id="e1", tenant_id="t1", occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
    payment_id="p1", debtor_id="d1", amount=Money.of("25.00", "BRL"), source="manual",
)  # fmt: skip


def test_collect_without_plugin_manager() -> None:
    providers = collect_channels(sdk_sample_channel)
    assert [p.name for p in providers] == ["acme_sms"]
    assert collect(sdk_sample_channel, "register_channels")[0].channel == "sms"
    with pytest.raises(LookupError):
        collect(sdk_sample_channel, "register_payment_providers")
    with pytest.raises(TypeError):
        collect(sdk_sample_channel, "on_payment_received")


def test_misspelt_hookimpl_fails_fast() -> None:
    class Typo:
        @hookimpl
        def register_channel(self, register: Any) -> None:  # missing "s"
            raise AssertionError("never called")

    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager(Typo())


def test_impl_may_take_a_subset_of_arguments() -> None:
    seen: list[str] = []

    class NoArgs:
        @hookimpl
        def on_payment_received(self) -> None:
            seen.append("called")

    pm = make_plugin_manager(NoArgs())
    pm.hook.on_payment_received(event=EVENT)
    assert seen == ["called"]


def test_fake_host_emits_to_sync_and_async_observers() -> None:
    received: list[tuple[str, str]] = []

    class SyncObserver:
        @hookimpl
        def on_payment_received(self, event: PaymentReceived) -> None:
            received.append(("sync", event.payment_id))

    class AsyncObserver:
        @hookimpl
        async def on_payment_received(self, event: PaymentReceived) -> str:
            await asyncio.sleep(0)
            received.append(("async", str(event.amount)))
            return "done"

    host = FakeHost(SyncObserver(), AsyncObserver())
    results = run(host.emit(EVENT))
    assert sorted(received) == [("async", "25.00 BRL"), ("sync", "p1")]
    assert "done" in results
    assert host.emitted == [EVENT]
    # An event without observers is delivered to nobody, without error.
    seg = SegmentChanged(event_id="e2", tenant_id="t1", occurred_at=EVENT.occurred_at,
                         debtor_id="d1", previous_segment_id=None, segment_id="s1")  # fmt: skip
    assert run(host.emit(seg)) == []


def test_fake_host_rejects_duplicate_names() -> None:
    host = FakeHost(sdk_sample_channel)
    assert list(host.channels) == ["acme_sms"]
    clone = types.ModuleType("clone")
    clone.register_channels = sdk_sample_channel.register_channels  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="duplicate"):
        host.load(clone)


def test_await_me_maybe() -> None:
    async def coro() -> int:
        return 3

    assert run(await_me_maybe(1)) == 1
    assert run(await_me_maybe(lambda: 2)) == 2
    assert run(await_me_maybe(coro)) == 3
    assert run(await_me_maybe(coro())) == 3


def test_sdk_imports_nothing_of_ours() -> None:
    package = Path(__file__).resolve().parent.parent / "cartera_sdk"
    allowed = {"msgspec", "pluggy", "httpx", "httpcore", "holidays", "cryptography", "pytest",
               "cartera_sdk"}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in allowed | stdlib, f"{path.name} imports {name}"
                if top == "pytest":
                    assert "testkit" in path.parts, f"{path.name} imports pytest outside testkit"
