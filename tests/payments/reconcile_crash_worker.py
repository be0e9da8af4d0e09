"""A process for the reconciliation crash test: it processes one stored webhook delivery
(the ``webhooks.process`` job's work) against ``CARTERA_DATABASE_URL`` and SIGKILLs itself
right after the re-fetched payment was applied, before the transaction commits.

    python -m tests.payments.reconcile_crash_worker <delivery id> <tenant id>
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.integrations import webhooks
from cartera.jobs.registry import JobContext, install_runner
from cartera.jobs.runner import InProcessRunner
from cartera.payments import reconcile
from cartera.settings import get_settings


async def work(delivery_id: int, tenant_id: int) -> None:
    real = reconcile.apply_view

    async def apply_then_die(*args: Any, **kwargs: Any) -> str:
        outcome = await real(*args, **kwargs)
        await args[0].flush()  # the payment is written, in a transaction never committed
        print(f"applied {outcome}, dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return outcome

    reconcile.apply_view = apply_then_die  # type: ignore[assignment]
    sessionmaker = make_sessionmaker(make_engine(get_settings().database_url))
    install_runner(InProcessRunner(sessionmaker, background=False))
    await webhooks.process_delivery(JobContext(
        job_id=0, tenant_id=tenant_id, payload={"delivery_id": delivery_id},
        sessionmaker=sessionmaker))


if __name__ == "__main__":
    asyncio.run(work(int(sys.argv[1]), int(sys.argv[2])))
