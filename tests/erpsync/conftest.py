"""Fixtures of the ERP sync tests: the in-memory ERP connector on the app's plugin host."""

from __future__ import annotations

import pytest
from litestar import Litestar

from cartera.erpsync import sync
from cartera.plugins.registry import current_host
from tests.erpsync.fake_erp import FakeErpConnector, install


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "PULL_BACKOFF_SECONDS", 0.0)


@pytest.fixture
def fake(app: Litestar) -> FakeErpConnector:
    return install(current_host())
