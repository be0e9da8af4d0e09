"""ProcrastinateRunner against the PostgreSQL test database, with an in-process worker."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from procrastinate import RetryStrategy
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.imports.models import ImportRun
from cartera.jobs.models import Job
from cartera.jobs.procrastinate_runner import ProcrastinateRunner, conninfo
from cartera.jobs.runner import insert_job
from cartera.settings import Settings
from tests.jobs.conftest import CALLS, load

pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")


def test_conninfo_drops_the_driver() -> None:
    assert conninfo("postgresql+psycopg://u:p%40ss@h:5433/db") == "postgresql://u:p%40ss@h:5433/db"


@pytest.fixture
async def runner(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
                 ) -> Any:
    runner = ProcrastinateRunner(settings, sessionmaker, retry=RetryStrategy(max_attempts=3))
    await runner.start()
    yield runner
    await runner.stop()


async def drain(runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
                job_id: int) -> Job:
    """Run a bounded worker until the job settles (a retry may need a second pass)."""
    for _ in range(5):
        await runner.run_worker(wait=False, install_signal_handlers=False)
        job = await load(sessionmaker, job_id)
        if job.status in ("succeeded", "failed"):
            return job
    return job


async def procrastinate_rows(sessionmaker: async_sessionmaker[AsyncSession],
                             job_id: int) -> list[str]:
    async with sessionmaker() as session:
        return list((await session.scalars(text(
            "SELECT status::text FROM procrastinate_jobs WHERE queueing_lock = :lock"),
            {"lock": f"job:{job_id}"})).all())


async def test_enqueued_job_runs_in_a_worker(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.echo",
                                   {"value": "pg", "lock": f"debtor:{tenant_id}"})
        await session.commit()
    assert await procrastinate_rows(sessionmaker, job.id) == ["todo"]
    done = await drain(runner, sessionmaker, job.id)
    assert done.status == "succeeded" and done.result == {"echo": "pg"}
    assert (done.progress_done, done.progress_total) == (5, 10)
    assert CALLS[job.id] == 1
    assert await procrastinate_rows(sessionmaker, job.id) == []  # successful jobs deleted


async def test_enqueue_is_transactional(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.echo", {})
        job_id = job.id
        await session.rollback()
    assert await procrastinate_rows(sessionmaker, job_id) == []
    async with sessionmaker() as session:
        assert await session.get(Job, job_id) is None


async def test_failing_job_is_retried(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.flaky", {})
        await session.commit()
    done = await drain(runner, sessionmaker, job.id)
    assert done.status == "succeeded", done.error
    assert done.result == {"attempt": 2}
    assert done.attempts == 2 and CALLS[job.id] == 2


async def test_job_failing_every_attempt_ends_failed(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.boom", {})
        await session.commit()
    done = await drain(runner, sessionmaker, job.id)
    assert done.status == "failed"
    assert done.error is not None and done.error.startswith("internal_error (error id ")
    assert CALLS[job.id] == 4  # the first run + max_attempts=3 retries


async def test_same_job_deferred_twice_runs_once(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.echo", {"value": 1})
        await session.commit()
    assert await runner.defer(job.id, {}) is False  # queueing lock: already waiting
    done = await drain(runner, sessionmaker, job.id)
    assert done.status == "succeeded" and CALLS[job.id] == 1
    # Deferred again after it succeeded: the worker runs it, execute() skips it.
    assert await runner.defer(job.id, {}) is True
    await drain(runner, sessionmaker, job.id)
    assert CALLS[job.id] == 1 and (await load(sessionmaker, job.id)).attempts == 1


async def test_maintenance_redefers_orphan_rows(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:  # a row procrastinate never heard of
        job = await insert_job(session, tenant_id, "test.echo", {"value": "orphan"})
        await session.execute(update(Job).where(Job.id == job.id)
                              .values(created_at=clock.now() - timedelta(minutes=5)))
        await session.commit()
    await runner.maintenance()
    assert await procrastinate_rows(sessionmaker, job.id) == ["todo"]
    await runner.maintenance()  # idempotent: still one
    assert await procrastinate_rows(sessionmaker, job.id) == ["todo"]
    done = await drain(runner, sessionmaker, job.id)
    assert done.status == "succeeded" and done.result == {"echo": "orphan"}


async def test_a_permanent_error_is_not_retried(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int) -> None:
    async with sessionmaker() as session:
        job = await runner.enqueue(session, tenant_id, "test.permanent", {})
        await session.commit()
    done = await drain(runner, sessionmaker, job.id)
    assert (done.status, done.error, done.attempts) == ("failed", "can never work", 1)
    assert CALLS[job.id] == 1
    assert await procrastinate_rows(sessionmaker, job.id) == ["failed"]


def size_of(path: Path) -> int:
    return path.stat().st_size


async def _import(runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
                  tenant_id: int, path: Path, fmt: str) -> tuple[int, int]:
    async with sessionmaker() as session:
        run = ImportRun(tenant_id=tenant_id, format=fmt, filename=path.name,
                        file_path=str(path), size_bytes=size_of(path), status="queued")
        session.add(run)
        await session.flush()
        job = await runner.enqueue(session, tenant_id, "import", {"import_id": run.id})
        run.job_id = job.id
        await session.commit()
        return run.id, job.id


async def _import_state(sessionmaker: async_sessionmaker[AsyncSession],
                        import_id: int) -> ImportRun:
    async with sessionmaker() as session:
        run = await session.get(ImportRun, import_id)
        assert run is not None
        return run


async def test_an_import_that_cannot_succeed_fails_once_and_agrees_with_its_job(
        runner: ProcrastinateRunner, sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: int, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"external_ref,name\nC-1,Ana\n")
    import_id, job_id = await _import(runner, sessionmaker, tenant_id, path, "csv")
    done = await drain(runner, sessionmaker, job_id)
    run = await _import_state(sessionmaker, import_id)
    assert (done.status, run.status, done.attempts) == ("failed", "failed", 1)
    assert done.error == run.error and run.error.startswith("the CSV header has no 'type'")
    assert await procrastinate_rows(sessionmaker, job_id) == ["failed"]
    assert not path.exists()


async def test_an_import_failing_transiently_is_retried_to_success(
        settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from cartera.imports import pipeline

    class Deadlock(Exception):
        sqlstate = "40P01"

    real, calls = pipeline._load_all, []

    async def load_all(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT ...", {}, Deadlock("deadlock detected"))
        await real(*args)

    monkeypatch.setattr(pipeline, "_load_all", load_all)
    runner = ProcrastinateRunner(settings, sessionmaker,
                                 retry=RetryStrategy(max_attempts=3, wait=3600))
    await runner.start()
    try:
        path = tmp_path / "ok.ndjson"
        path.write_bytes(b'{"type":"debtor","external_ref":"C-1","name":"Ana","country":"PE"}\n')
        import_id, job_id = await _import(runner, sessionmaker, tenant_id, path, "ndjson")
        await runner.run_worker(wait=False, install_signal_handlers=False)
        job, run = await load(sessionmaker, job_id), await _import_state(sessionmaker, import_id)
        assert (job.status, run.status) == ("queued", "queued")
        assert job.error == run.error == "Deadlock: deadlock detected"
        assert path.exists()
        async with sessionmaker() as session:  # the retry is due now
            await session.execute(text(
                "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE queueing_lock = :l"),
                {"l": f"job:{job_id}"})
            await session.commit()
        done = await drain(runner, sessionmaker, job_id)
    finally:
        await runner.stop()
    run = await _import_state(sessionmaker, import_id)
    assert (done.status, run.status, done.attempts, run.rows_applied) == (
        "succeeded", "succeeded", 2, 1)
    assert done.error is None and run.error is None and not path.exists()
