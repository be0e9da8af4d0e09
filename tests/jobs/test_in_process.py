"""InProcessRunner: the SQLite default (and the runner every API test uses)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.jobs import registry
from cartera.jobs.catalog import load_all
from cartera.jobs.models import Job
from cartera.jobs.runner import InProcessRunner
from cartera.ops.logging import JsonFormatter
from cartera.tenants.models import Tenant
from tests.jobs.conftest import CALLS, PERSONAL, load


async def test_success_records_result_and_progress(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> None:
    runner = InProcessRunner(sessionmaker)
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.echo", {"value": 42})
        await session.commit()
    await runner.run_pending()
    done = await load(sessionmaker, job.id)
    assert done.status == "succeeded"
    assert done.result == {"echo": 42}
    assert (done.progress_done, done.progress_total) == (5, 10)
    assert done.attempts == 1 and done.error is None
    assert done.started_at is not None and done.finished_at is not None


async def test_failure_records_error(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> None:
    runner = InProcessRunner(sessionmaker)
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.boom", {})
        await session.commit()
    await runner.run_pending()
    failed = await load(sessionmaker, job.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert re.fullmatch(r"internal_error \(error id [0-9a-f]{16}\)", failed.error)
    assert failed.result is None and failed.finished_at is not None


async def test_a_database_error_shows_the_tenant_a_code_and_the_operator_no_parameters(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int,
        caplog: pytest.LogCaptureFixture) -> None:
    runner = InProcessRunner(sessionmaker)
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.bad_sql", {})
        await session.commit()
    with caplog.at_level(logging.ERROR, logger="cartera.jobs"):
        await runner.run_pending()
    failed = await load(sessionmaker, job.id)
    assert failed.error is not None
    assert "SELECT" not in failed.error and PERSONAL not in failed.error
    error_id = failed.error.split("error id ")[1].rstrip(")")
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert error_id in logged and "national_id" in logged  # the operator gets the statement
    assert PERSONAL not in logged  # ... but never the bound personal data


async def test_rolled_back_enqueue_leaves_no_job(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> None:
    runner = InProcessRunner(sessionmaker)
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.echo", {})
        job_id = job.id
        await session.rollback()
    async with sessionmaker() as session:
        assert await session.get(Job, job_id) is None


async def test_interrupted_running_job_is_requeued_on_start(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> None:
    # The loop runs the real periodic housekeeping first: stop() lets it finish.
    runner = InProcessRunner(sessionmaker, poll_seconds=0.05)
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.echo", {"value": "again"})
        await session.commit()
        # As if a process died mid-job.
        await session.execute(update(Job).where(Job.id == job.id).values(status="running"))
        await session.commit()
    assert (await load(sessionmaker, job.id)).status == "running"
    await runner.start()
    try:
        for _ in range(100):
            if (await load(sessionmaker, job.id)).status == "succeeded":
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    done = await load(sessionmaker, job.id)
    assert done.status == "succeeded" and done.result == {"echo": "again"}
    assert CALLS[job.id] == 1


async def test_unknown_kind_is_refused(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> None:
    runner = InProcessRunner(sessionmaker)
    async with sessionmaker() as session:
        try:
            await runner.enqueue(session, tenant_id, "test.nope", {})
        except ValueError as exc:
            assert "test.nope" in str(exc)
        else:
            raise AssertionError("expected ValueError")


async def test_a_permanent_error_fails_the_job_with_its_message(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> None:
    runner = InProcessRunner(sessionmaker)
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.permanent", {})
        await session.commit()
    await runner.run_pending()
    await runner.run_pending()
    failed = await load(sessionmaker, job.id)
    assert (failed.status, failed.error, failed.attempts) == ("failed", "can never work", 1)
    assert CALLS[job.id] == 1


async def _rename_tenant_and_wait(sessionmaker: async_sessionmaker[AsyncSession],
                                  tenant_id: int, midway: asyncio.Event,
                                  release: asyncio.Event) -> None:
    """A periodic pass that writes, then waits inside its open transaction."""
    async with sessionmaker() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant_id)
                              .values(name="half-applied"))
        midway.set()
        while not release.is_set():  # statement after statement, in the transaction
            await session.execute(text(_BUSY_SQL))
        await session.commit()


_BUSY_SQL = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
             " SELECT count(*) FROM n")
"""A statement that keeps the database busy for a while (tens of milliseconds)."""


def _mid_transaction_pass(monkeypatch: pytest.MonkeyPatch, tenant_id: int,
                          release: asyncio.Event) -> asyncio.Event:
    """Make the runner's periodic housekeeping one pass that stops mid-transaction."""
    load_all()  # the real catalog registers itself before the list is swapped
    midway = asyncio.Event()

    async def housekeeping(sessionmaker: async_sessionmaker[AsyncSession], _: object) -> None:
        await _rename_tenant_and_wait(sessionmaker, tenant_id, midway, release)

    monkeypatch.setattr(registry, "PERIODIC", [housekeeping])
    return midway


async def _write_at_once(sessionmaker: async_sessionmaker[AsyncSession],
                         tenant_id: int) -> str:
    """Write the tenant's row from another connection, failing (not waiting) on a lock held
    by anyone else; returns the name it found there first."""
    async with sessionmaker() as session:
        if session.bind.dialect.name == "sqlite":
            await session.execute(text("PRAGMA busy_timeout = 200"))
        else:
            await session.execute(text("SET LOCAL lock_timeout = '200ms'"))
        before = (await session.execute(select(Tenant.name).where(Tenant.id == tenant_id)))
        name = before.scalar_one()
        await session.execute(update(Tenant).where(Tenant.id == tenant_id)
                              .values(name="after-stop"))
        await session.commit()
        if session.bind.dialect.name == "sqlite":
            await session.execute(text("PRAGMA busy_timeout = 30000"))
        return name


async def test_stop_lets_a_running_periodic_pass_finish(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()
    midway = _mid_transaction_pass(monkeypatch, tenant_id, release)
    runner = InProcessRunner(sessionmaker, poll_seconds=0.05, stop_timeout=5)
    await runner.start()
    await asyncio.wait_for(midway.wait(), 5)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # it waits for the pass, it does not cancel it
    release.set()
    await asyncio.wait_for(stopping, 5)
    assert await _write_at_once(sessionmaker, tenant_id) == "half-applied"  # committed


async def test_stop_cancels_a_pass_past_the_timeout_and_rolls_it_back(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with sessionmaker() as session:
        original = await session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
    midway = _mid_transaction_pass(monkeypatch, tenant_id, asyncio.Event())  # never released
    runner = InProcessRunner(sessionmaker, poll_seconds=0.05, stop_timeout=0.2)
    await runner.start()
    await asyncio.wait_for(midway.wait(), 5)
    await asyncio.wait_for(runner.stop(), 5)
    # The write lock (SQLite) or row lock (PostgreSQL) is gone, and nothing half-applied.
    assert await _write_at_once(sessionmaker, tenant_id) == original


async def test_a_stopping_runner_starts_no_further_job(
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()
    midway = _mid_transaction_pass(monkeypatch, tenant_id, release)
    runner = InProcessRunner(sessionmaker, poll_seconds=0.05, stop_timeout=5)
    async with sessionmaker() as session:  # due, but the loop's periodic pass comes first
        job = await runner.enqueue(session, tenant_id, "test.echo", {"value": 1})
        await session.commit()
    await runner.start()
    await asyncio.wait_for(midway.wait(), 5)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(stopping, 5)
    assert (await load(sessionmaker, job.id)).status == "queued"
    assert job.id not in CALLS
