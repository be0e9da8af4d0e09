"""Job kinds: ``@job("kind")`` registers the coroutine that does one job's work.

A handler receives a :class:`JobContext` and must be idempotent: every runner delivers at
least once (a crash mid-job means it runs again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.jobs.models import Job


@dataclass
class JobContext:
    job_id: int
    tenant_id: int
    payload: dict[str, Any]
    sessionmaker: async_sessionmaker[AsyncSession]
    attempt: int = 1
    """This run's number, from 1 (a retry or a redelivery after a crash counts)."""

    async def progress(self, done: int, total: int | None = None) -> None:
        """Record progress in its own short transaction, visible to the API at once."""
        values: dict[str, Any] = {"progress_done": done}
        if total is not None:
            values["progress_total"] = total
        async with self.sessionmaker() as session:
            await session.execute(update(Job).where(Job.id == self.job_id).values(**values))
            await session.commit()


Handler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
HANDLERS: dict[str, Handler] = {}


def job(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


_runner: Any = None


def install_runner(runner: Any) -> None:
    """Make ``runner`` the process's job runner (the app and ``cartera worker`` do this)."""
    global _runner
    _runner = runner


def current_runner() -> Any:
    """The process's job runner, for handlers that queue follow-up work."""
    if _runner is None:
        raise RuntimeError("no job runner installed in this process")
    return _runner


Periodic = Callable[[async_sessionmaker[AsyncSession], Any], Awaitable[None]]
PERIODIC: list[Periodic] = []


def every_minute(fn: Periodic) -> Periodic:
    """Register housekeeping that runs about once a minute in exactly one place: the
    procrastinate maintenance task on PostgreSQL, the in-process runner on SQLite. It gets
    a sessionmaker and the runner, and must be idempotent."""
    PERIODIC.append(fn)
    return fn


async def run_periodic(sessionmaker: async_sessionmaker[AsyncSession], runner: Any) -> None:
    import logging

    from cartera.jobs.catalog import load_all

    load_all()
    for fn in PERIODIC:
        try:
            await fn(sessionmaker, runner)
        except Exception:  # one failing task must not stop the others
            logging.getLogger("cartera.jobs").exception("periodic task failed")
