"""pytest plugin (``pytest11`` entry point ``cartera_sdk``): fixtures for plugin authors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fakeserver import FakeHTTPServer
from .host import FakeHost, FrozenClock

__all__ = ["fake_host", "fake_http_server", "frozen_clock"]

# pytester lets a plugin's own tests show that a contract breaker fails the suites.
pytest_plugins = ["pytester"]


@pytest.fixture
def frozen_clock() -> FrozenClock:
    """A :class:`FrozenClock` at 2026-03-02 15:00 UTC (a Monday)."""
    return FrozenClock()


@pytest.fixture
def fake_host(frozen_clock: FrozenClock) -> FakeHost:
    """An empty :class:`FakeHost`; ``fake_host.load(my_plugin)`` to register plugins."""
    return FakeHost(clock=frozen_clock)


@pytest.fixture
def fake_http_server() -> Iterator[FakeHTTPServer]:
    """A started :class:`FakeHTTPServer` on 127.0.0.1; stopped after the test."""
    with FakeHTTPServer() as server:
        yield server
