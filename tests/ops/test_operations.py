"""Operations: refusing an unmigrated database, health, readiness, metrics, request ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cartera.api.app import create_app
from cartera.db.migrate import DatabaseNotMigrated
from cartera.settings import Settings


async def test_the_app_refuses_an_unmigrated_database_and_says_how_to_fix_it(
    tmp_path: Path, settings: Settings,
) -> None:
    fresh = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
                     log_level="WARNING", jobs_inline=True)
    app = create_app(fresh)
    try:
        with pytest.raises(ExceptionGroup) as caught:  # Litestar runs start-up in a task group
            async with app.lifespan():
                pass
        assert caught.group_contains(DatabaseNotMigrated, match="run `cartera db upgrade`")
    finally:
        create_app(settings)  # put the suite's settings back for code that reads them


async def test_health_readiness_metrics_and_request_ids(http: Any) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.json() == {"status": "ready", "database": "ok"}
    traced = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert traced.headers["x-request-id"] == "abc-123"
    generated = await http.get("/healthz", headers={"X-Request-Id": "bad id\n"})
    assert generated.headers["x-request-id"] != "bad id\n"
    metrics = (await http.get("/metrics")).text
    assert 'cartera_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


async def test_errors_never_leak_internals(http: Any) -> None:
    r = await http.get("/v1/debtors/1")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in r.text
