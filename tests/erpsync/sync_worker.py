"""A job worker process for the ERP sync crash test: the in-process runner's loop against
``CARTERA_DATABASE_URL``, with the in-memory ERP of :func:`ledger_for` (the same data in
every process) on its plugin host. Prints ``pulled <n>`` after each page it is served.

    python -m tests.erpsync.sync_worker --integration 7 --customers 20 --items 20
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cartera.erpsync import sync
from cartera.plugins.registry import current_host
from tests.erpsync.fake_erp import Ledger, debtor, install, item
from tests.worker import run_worker_loop


def ledger_for(customers: int, items: int) -> Ledger:
    ledger = Ledger()
    for c in range(customers):
        ledger.put_debtor(debtor(f"K{c:04}"))
        for n in range(items):
            ledger.put_item(item(f"K{c:04}-{n:03}", f"K{c:04}", f"{10 + n}.{c % 100:02}"))
    return ledger


class _Printing(Ledger):
    def page(self, stream: str, cursor: str | None, limit: int) -> Any:
        answer = super().page(stream, cursor, limit)
        print(f"pulled {len(self.pulls)}", flush=True)
        return answer


async def work(integration_id: int, customers: int, items: int, delay: float,
               apply_rows: int) -> None:
    connector = install(current_host())
    source = ledger_for(customers, items)
    ledger = _Printing(**{f: getattr(source, f) for f in ("clock", "debtors", "items",
                                                         "versions")})
    ledger.page_delay = delay
    connector.ledgers[str(integration_id)] = ledger
    sync.PULL_BACKOFF_SECONDS = 0.0
    sync.APPLY_ROWS = apply_rows  # several page transactions in a run this small
    await run_worker_loop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--integration", type=int, required=True)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--apply-rows", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(work(args.integration, args.customers, args.items, args.delay,
                     args.apply_rows))


if __name__ == "__main__":
    main()
