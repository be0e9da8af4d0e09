"""Long-running processes (``cartera serve``, ``cartera worker``, ``cartera events deliver``)
freeze their start-up heap (``gc.freeze``) once ready; apps built for tests do not."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cartera import cli
from cartera.api import app as app_module
from cartera.jobs.runner import InProcessRunner
from cartera.settings import Settings


def _runner(settings: Settings, sessionmaker: Any) -> InProcessRunner:
    return InProcessRunner(sessionmaker, background=False)


@pytest.mark.parametrize("freeze", [False, True])
async def test_the_heap_is_frozen_once_started_only_when_asked(settings: Settings,
                                                               freeze: bool) -> None:
    gc.unfreeze()
    try:
        built = app_module.create_app(settings, runner_factory=_runner, freeze_heap=freeze)
        assert gc.get_freeze_count() == 0
        async with AsyncTestClient(built, base_url="http://testserver.local") as client:
            assert (await client.get("/healthz")).status_code == 200
            # Start-up built far more than this (modules, routes, schemas).
            assert (gc.get_freeze_count() > 50_000) is freeze
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("workers", [1, 2])
def test_cartera_serve_runs_the_serving_app(monkeypatch: pytest.MonkeyPatch,
                                            workers: int) -> None:
    import uvicorn

    ran: list[Any] = []
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: ran.append((target, kw)))
    monkeypatch.setattr(app_module, "create_app",
                        lambda settings=None, **kw: built.append(kw) or "the app")
    args = argparse.Namespace(host="127.0.0.1", port=8000, workers=workers)
    assert cli.cmd_serve(args) == 0
    [(target, options)] = ran
    if workers == 1:
        assert target == "the app" and built == [{"freeze_heap": True}]
    else:  # each worker process calls the factory itself
        assert target == "cartera.api.app:serving_app" and options["factory"] is True
        assert options["workers"] == 2
        assert app_module.serving_app() == "the app"
        assert built == [{"freeze_heap": True}]


async def test_cartera_worker_freezes_before_it_works(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from cartera.jobs import procrastinate_runner

    frozen: list[bool] = []

    async def loop(runner: Any, poll_seconds: float = 0.5) -> None:
        frozen.append(gc.get_freeze_count() > 0)

    monkeypatch.setattr(procrastinate_runner, "_run_in_process", loop)
    gc.unfreeze()
    try:
        await procrastinate_runner.run_worker(
            Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"))
    finally:
        gc.unfreeze()
    assert frozen == [True]


async def test_cartera_events_deliver_freezes_before_it_works(
        monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    from cartera.events import cli as events_cli
    from cartera.events.delivery import DeliveryWorker

    frozen: list[bool] = []

    async def run_forever(self: Any, poll_seconds: float) -> None:
        frozen.append(gc.get_freeze_count() > 0)

    monkeypatch.setattr(DeliveryWorker, "run_forever", run_forever)
    monkeypatch.setattr(events_cli, "get_settings", lambda: settings)
    gc.unfreeze()
    try:
        await events_cli._deliver(concurrency=1, poll_seconds=0.1, batch=1, pipelines=1)
    finally:
        gc.unfreeze()
    assert frozen == [True]
