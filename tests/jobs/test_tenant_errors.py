"""What tenants read of failed imports and segmentation runs: a code and an error id,
never the database's message (SQL) or the data bound into it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from cartera.imports import pipeline
from cartera.segmentation import jobs as segmentation_jobs
from tests.conftest import TenantClient
from tests.imports.test_imports import FILE, upload
from tests.jobs.conftest import PERSONAL

RunJobs = Callable[[], Awaitable[int]]
REFERENCE = re.compile(r"internal_error \(error id [0-9a-f]{16}\)")


def _failing_sql(module: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        session = next(a for a in args if hasattr(a, "execute"))
        await session.execute(text("SELECT national_id FROM debtors WHERE nope = :n"),
                              {"n": PERSONAL})

    monkeypatch.setattr(module, name, fail)


async def test_a_failed_import_shows_a_reference(tenant: TenantClient, run_jobs: RunJobs,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(sessionmaker: Any, *args: Any) -> Any:
        async with sessionmaker() as session:
            await session.execute(text("SELECT national_id FROM debtors WHERE nope = :n"),
                                  {"n": PERSONAL})

    monkeypatch.setattr(pipeline, "_load_all", fail)
    created = await upload(tenant, FILE)
    await run_jobs()
    run = (await tenant.api.get(f"/v1/imports/{created['id']}")).json()
    job = (await tenant.api.get(f"/v1/jobs/{created['job_id']}")).json()
    assert run["status"] == "failed" and REFERENCE.fullmatch(run["error"])
    assert REFERENCE.fullmatch(job["error"])
    assert "SELECT" not in str(run) + str(job)


async def test_a_failed_segmentation_run_shows_a_reference(
        tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_sql(segmentation_jobs, "run_segmentation", monkeypatch)
    r = await tenant.api.post("/v1/segments/runs", json={})
    assert r.status_code == 202, r.text
    await run_jobs()
    run = (await tenant.api.get(f"/v1/segments/runs/{r.json()['id']}")).json()
    assert run["status"] == "failed" and REFERENCE.fullmatch(run["error"])
    assert PERSONAL not in str(run) and "SELECT" not in str(run)
