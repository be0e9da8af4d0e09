"""``cartera events deliver``: a long-running webhook delivery worker."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cartera.ops.heap import freeze_startup_heap
from cartera.settings import get_settings


async def _deliver(concurrency: int, poll_seconds: float, batch: int, pipelines: int) -> None:
    from cartera.db.engine import make_engine, make_sessionmaker
    from cartera.events.delivery import DeliveryWorker

    engine = make_engine(get_settings().database_url)
    try:
        async with DeliveryWorker(make_sessionmaker(engine), concurrency=concurrency,
                                  batch=batch, pipelines=pipelines) as worker:
            freeze_startup_heap()
            await worker.run_forever(poll_seconds)
    finally:
        await engine.dispose()


def cmd_events_deliver(args: argparse.Namespace) -> int:
    asyncio.run(_deliver(args.concurrency, args.poll, args.batch, args.pipelines))
    return 0


def add_events_command(sub: Any) -> None:
    events = sub.add_parser("events", help="outbound events (webhooks to ISVs)")
    actions = events.add_subparsers(dest="events_command", required=True)
    deliver = actions.add_parser("deliver", help="deliver events to webhook endpoints until "
                                 "SIGINT (several may run at once)")
    deliver.add_argument("--concurrency", type=int, default=64,
                         help="requests in flight at once (default 64)")
    deliver.add_argument("--poll", type=float, default=1.0,
                         help="seconds between rounds when nothing is due (default 1)")
    deliver.add_argument("--batch", type=int, default=200,
                         help="deliveries claimed per round (default 200)")
    deliver.add_argument("--pipelines", type=int, default=2,
                         help="rounds running at once on PostgreSQL, sharing --concurrency "
                         "(default 2)")
    deliver.set_defaults(fn=cmd_events_deliver)
