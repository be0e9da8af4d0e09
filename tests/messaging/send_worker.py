"""A job worker process for the crash test: the in-process runner's loop (due jobs and the
once-a-minute housekeeping, here every pass) against ``CARTERA_DATABASE_URL``, with a small
batch and lease so a killed worker's claims expire within the test.

    python -m tests.messaging.send_worker --batch-size 20 --lease-margin 2
"""

from __future__ import annotations

import argparse
import asyncio

from cartera.messaging import batch
from tests.worker import run_worker_loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=batch.BATCH_SIZE)
    parser.add_argument("--lease-margin", type=float, default=batch.LEASE_MARGIN_SECONDS)
    args = parser.parse_args()
    batch.BATCH_SIZE, batch.LEASE_MARGIN_SECONDS = args.batch_size, args.lease_margin
    asyncio.run(run_worker_loop())


if __name__ == "__main__":
    main()
