"""Imports that fail: the portfolio stays consistent, transient errors are retried,
permanent ones are not, the job and the import agree, and uploads are deleted."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from cartera import clock
from cartera.imports import jobs as import_jobs
from cartera.imports import pipeline
from cartera.imports.models import ImportRun
from cartera.imports.retention import purge_expired_uploads
from cartera.jobs.models import Job
from cartera.settings import Settings
from tests.conftest import TenantClient
from tests.imports.test_imports import DEBTOR, OLD, PAYMENT, RunJobs, ndjson, upload

SECOND = {**DEBTOR, "external_ref": "C-2", "contact_points": []}
SECOND_OBLIGATION = {**OLD, "external_ref": "F-2", "debtor_external_ref": "C-2",
                     "original_amount": "50.00"}
SECOND_PAYMENT = {**PAYMENT, "external_ref": "P-2", "debtor_external_ref": "C-2",
                  "amount": "10.00"}
THIRD = {**DEBTOR, "external_ref": "C-3", "contact_points": []}
THIRD_OBLIGATION = {**OLD, "external_ref": "F-3", "debtor_external_ref": "C-3"}
# Three rows a chunk (the tests set CHUNK_ROWS): one debtor, its obligation and payment each.
FILE = ndjson(DEBTOR, OLD, PAYMENT, SECOND, SECOND_OBLIGATION, SECOND_PAYMENT,
              THIRD, THIRD_OBLIGATION)


def on_disk(path: str) -> bool:
    return Path(path).exists()


def overwrite(path: str, content: bytes) -> None:
    Path(path).write_bytes(content)


class _Serialization(Exception):
    sqlstate = "40001"


def fail_money_of_chunk(monkeypatch: pytest.MonkeyPatch, chunk: int,
                        exc: Exception, times: int = 1) -> None:
    """Make the money phase of the ``chunk``-th chunk (1-based) raise ``exc``, ``times``
    times; three rows a chunk."""
    monkeypatch.setattr("cartera.imports.rows.CHUNK_ROWS", 3)
    real, calls = pipeline._apply_money, {"n": 0, "failed": 0}

    async def apply_money(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == chunk and calls["failed"] < times:
            calls["failed"] += 1
            calls["n"] = 0  # a retry starts again from the first chunk
            raise exc
        await real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_apply_money", apply_money)


async def state(app: Litestar, tenant: TenantClient, import_id: int) -> tuple[Any, Any]:
    async with app.state.ctx.sessionmaker() as session:
        run = await session.get(ImportRun, import_id)
        assert run is not None and run.job_id is not None
        job = await session.get(Job, run.job_id)
        return run, job


async def assert_consistent(app: Litestar, tenant_id: int) -> dict[str, tuple[int, int]]:
    """Every debtor's payments are allocated oldest due first and its summary says
    obligations - allocations; returns (outstanding, unapplied credit) per debtor."""
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.execute(text("""
            SELECT d.external_ref,
              (SELECT COALESCE(SUM(o.original_minor - o.prior_paid_minor), 0)
               FROM obligations o WHERE o.debtor_id = d.id) AS owed,
              (SELECT COALESCE(SUM(o.outstanding_minor), 0)
               FROM obligations o WHERE o.debtor_id = d.id) AS outstanding,
              (SELECT COALESCE(SUM(a.amount_minor), 0)
               FROM allocations a WHERE a.debtor_id = d.id) AS allocated,
              (SELECT COALESCE(SUM(p.amount_minor), 0)
               FROM payments p WHERE p.debtor_id = d.id) AS paid,
              (SELECT COALESCE(SUM(p.unapplied_minor), 0)
               FROM payments p WHERE p.debtor_id = d.id) AS unapplied,
              (SELECT b.outstanding_minor FROM debtor_balances b WHERE b.debtor_id = d.id)
                AS summary,
              (SELECT b.unapplied_credit_minor FROM debtor_balances b
               WHERE b.debtor_id = d.id) AS credit
            FROM debtors d WHERE d.tenant_id = :t"""), {"t": tenant_id})).all()
    found = {}
    for ref, owed, outstanding, allocated, paid, unapplied, summary, credit in rows:
        assert allocated == min(owed, paid), ref
        assert outstanding == owed - allocated and unapplied == paid - allocated, ref
        if owed or paid:
            assert (summary, credit) == (owed - allocated, paid - allocated), ref
        found[ref] = (owed - allocated, paid - allocated)
    return found


async def test_a_failure_after_the_first_chunk_leaves_the_portfolio_consistent(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fail_money_of_chunk(monkeypatch, 2, RuntimeError("injected"))
    created = await upload(tenant, FILE)
    await run_jobs()
    run, job = await state(app, tenant, created["id"])
    assert run.status == "failed" and run.error.startswith("internal_error (error id ")
    assert (job.status, job.error, job.attempts) == ("failed", run.error, 1)
    # Chunk 1 committed (C-1 paid 120.00 of 100.00); chunk 2's money did not.
    balances = await assert_consistent(app, tenant.tenant_id)
    assert balances["C-1"] == (0, 2000)
    assert not on_disk(run.file_path) and run.file_deleted_at is not None
    shown = (await tenant.api.get(f"/v1/imports/{created['id']}")).json()
    assert (shown["status"], shown["error"]) == ("failed", run.error)


async def test_a_transient_error_is_retried_and_both_say_queued_meanwhile(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost = OperationalError("UPDATE ...", {}, _Serialization("could not serialize access"))
    fail_money_of_chunk(monkeypatch, 2, lost)
    created = await upload(tenant, FILE)
    await run_jobs()
    run, job = await state(app, tenant, created["id"])
    assert run.status == job.status == "queued"
    assert run.error == job.error == "_Serialization: could not serialize access"
    assert job.run_after is not None and on_disk(run.file_path)
    assert (await assert_consistent(app, tenant.tenant_id))["C-1"] == (0, 2000)
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(run_after=None))
        await session.commit()
    await run_jobs()
    run, job = await state(app, tenant, created["id"])
    assert (run.status, run.error, job.status, job.error) == ("succeeded", None, "succeeded",
                                                              None)
    assert job.attempts == 2 and run.rows_applied == 8
    balances = await assert_consistent(app, tenant.tenant_id)
    assert balances == {"C-1": (0, 2000), "C-2": (4000, 0), "C-3": (10000, 0)}


async def test_a_transient_error_on_the_last_attempt_fails_both(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost = OperationalError("UPDATE ...", {}, _Serialization("could not serialize access"))
    fail_money_of_chunk(monkeypatch, 1, lost, times=99)
    monkeypatch.setattr(import_jobs, "RETRY_DELAY_SECONDS", 0.0)
    created = await upload(tenant, FILE)
    await run_jobs()
    run, job = await state(app, tenant, created["id"])
    assert (run.status, job.status, job.attempts) == ("failed", "failed", 5)
    assert run.error == job.error == "_Serialization: could not serialize access"


async def test_a_file_that_cannot_be_read_fails_at_once(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    created = await upload(tenant, b"type,external_ref\ndebtor,C-1\n", "text/csv")
    run, _ = await state(app, tenant, created["id"])
    overwrite(run.file_path, b"external_ref,name\nC-1,Ana\n")  # no type column now
    await run_jobs()
    run, job = await state(app, tenant, created["id"])
    assert (run.status, job.status, job.attempts) == ("failed", "failed", 1)
    assert run.error == job.error and run.error.startswith("the CSV header has no 'type'")
    assert not on_disk(run.file_path)


async def test_uploads_are_deleted_at_the_end_or_after_the_retention_period(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await upload(tenant, FILE)
    await run_jobs()
    run, _ = await state(app, tenant, created["id"])
    assert run.status == "succeeded" and not on_disk(run.file_path)
    shown = (await tenant.api.get(f"/v1/imports/{created['id']}")).json()
    assert shown["file_deleted_at"] is not None

    keeping = dataclasses.replace(settings, import_retention_days=2)
    monkeypatch.setattr(pipeline, "get_settings", lambda: keeping)
    kept = await upload(tenant, FILE)
    await run_jobs()
    run, _ = await state(app, tenant, kept["id"])
    assert run.status == "succeeded" and on_disk(run.file_path)
    sessionmaker = app.state.ctx.sessionmaker
    assert await purge_expired_uploads(sessionmaker, 2) == 0
    async with sessionmaker() as session:
        await session.execute(update(ImportRun).where(ImportRun.id == run.id).values(
            finished_at=clock.now() - timedelta(days=3)))
        await session.commit()
    assert await purge_expired_uploads(sessionmaker, 2) == 1
    run, _ = await state(app, tenant, kept["id"])
    assert not on_disk(run.file_path) and run.file_deleted_at is not None
    assert await purge_expired_uploads(sessionmaker, 2) == 0


async def test_an_upload_left_behind_at_the_end_is_purged_later(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def cannot_delete(*args: Any) -> None:
        raise OSError("device busy")

    monkeypatch.setattr(pipeline, "delete_upload", cannot_delete)
    created = await upload(tenant, FILE)
    await run_jobs()
    run, job = await state(app, tenant, created["id"])
    assert (run.status, job.status) == ("succeeded", "succeeded")
    assert on_disk(run.file_path) and run.file_deleted_at is None
    assert await purge_expired_uploads(app.state.ctx.sessionmaker, 0) == 1
    assert not on_disk(run.file_path)


async def test_promises_are_settled_by_a_failed_import_too(
    app: Litestar, tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.negotiation.test_promises import day, debtor, get, promise

    d = await debtor(tenant, "IMP-1")
    kept = await promise(tenant, d, "80.00")
    payments = [{"type": "payment", "external_ref": f"P-{i}", "debtor_external_ref": "IMP-1",
                 "currency": "PEN", "amount": "40.00", "paid_on": day(0)} for i in range(6)]
    fail_money_of_chunk(monkeypatch, 2, RuntimeError("injected"))  # after P-0..P-2
    created = await upload(tenant, ndjson(*payments))
    await run_jobs()
    run, _ = await state(app, tenant, created["id"])
    assert run.status == "failed"
    found = await get(tenant, kept["id"])
    assert (found["status"], found["paid_amount"]) == ("kept", "120.00")  # chunk 1: 3 x 40.00
