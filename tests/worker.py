"""The loop of the job worker processes the crash tests start and kill
(:mod:`tests.messaging.send_worker`, :mod:`tests.erpsync.sync_worker`)."""

from __future__ import annotations

import asyncio

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.jobs.registry import install_runner, run_periodic
from cartera.jobs.runner import InProcessRunner
from cartera.settings import get_settings


async def run_worker_loop() -> None:
    """The in-process runner's loop against ``CARTERA_DATABASE_URL``: due jobs and the
    once-a-minute housekeeping, here every pass, until the process is killed. Prints
    ``worker ready`` once it has started (jobs left running by a killed worker are queued
    again first)."""
    engine = make_engine(get_settings().database_url)
    sessionmaker = make_sessionmaker(engine)
    runner = InProcessRunner(sessionmaker, background=False)
    install_runner(runner)
    await runner.start()  # a restart: jobs left running by a killed worker run again
    print("worker ready", flush=True)
    while True:
        await run_periodic(sessionmaker, runner)
        if not await runner.run_pending():
            await asyncio.sleep(0.2)
