"""InProcessRunner: the SQLite default (and the runner every API test uses)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.jobs import runner as runner_module
from cartera.jobs.models import Job
from cartera.jobs.runner import InProcessRunner
from cartera.ops.logging import JsonFormatter
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
        sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop's first step is the periodic housekeeping over the whole (shared) test
    # database; stopping the runner mid-way cancels it inside an aiosqlite transaction,
    # whose thread goes on holding SQLite's write lock ("database is locked" in the next
    # test). This test is about the requeue alone.
    monkeypatch.setattr(runner_module, "run_periodic", _no_housekeeping)
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


async def _no_housekeeping(*_: object) -> None:
    return None
