"""A job worker process for the crash test: the in-process runner's loop (due jobs and the
once-a-minute housekeeping, here every pass) against ``CARTERA_DATABASE_URL``, with a small
batch and lease so a killed worker's claims expire within the test.

    python -m tests.messaging.send_worker --batch-size 20 --lease-margin 2
"""

from __future__ import annotations

import argparse
import asyncio

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.jobs.registry import install_runner, run_periodic
from cartera.jobs.runner import InProcessRunner
from cartera.messaging import batch
from cartera.settings import get_settings


async def work() -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=batch.BATCH_SIZE)
    parser.add_argument("--lease-margin", type=float, default=batch.LEASE_MARGIN_SECONDS)
    args = parser.parse_args()
    batch.BATCH_SIZE, batch.LEASE_MARGIN_SECONDS = args.batch_size, args.lease_margin
    asyncio.run(work())


if __name__ == "__main__":
    main()
