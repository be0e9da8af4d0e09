"""A sync worker killed (SIGKILL) in the middle of a run, then restarted: the run resumes at
the stored cursors and every ERP row is applied once, none lost, none counted twice
(PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.erpsync.models import ErpSyncRowError, ErpSyncRun
from cartera.portfolio.models import DebtorBalance, Obligation
from cartera.settings import get_settings
from tests.conftest import TenantClient
from tests.erpsync.fake_erp import FakeErpConnector
from tests.erpsync.sync_worker import ledger_for
from tests.erpsync.test_sync import erp_integration, start

pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS, ITEMS = 20, 20


def _worker(iid: int) -> subprocess.Popen[str]:
    env = {**os.environ, "CARTERA_DATABASE_URL": get_settings().database_url,
           "CARTERA_PLUGIN_TIMEOUT": "5", "CARTERA_LOG_LEVEL": "ERROR"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.erpsync.sync_worker", "--integration", str(iid),
         "--customers", str(CUSTOMERS), "--items", str(ITEMS), "--delay", "0.03"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


async def _state(tenant_id: int, run_id: int) -> tuple[str, int, int, int, int]:
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            run = await session.get(ErpSyncRun, run_id)
            assert run is not None
            count, total = (await session.execute(select(
                func.count(), func.coalesce(func.sum(Obligation.original_minor), 0)).where(
                Obligation.tenant_id == tenant_id))).one()
            balance = await session.scalar(select(func.coalesce(func.sum(
                DebtorBalance.outstanding_minor), 0)).where(DebtorBalance.tenant_id == tenant_id))
            errors = await session.scalar(select(func.count()).select_from(ErpSyncRowError)
                                          .where(ErpSyncRowError.run_id == run_id))
            assert errors == 0
            return run.status, run.rows_in, int(count), int(total), int(balance or 0)
    finally:
        await engine.dispose()


async def test_killed_sync_worker_resumes_and_loses_or_doubles_nothing(
        tenant: TenantClient, fake: FakeErpConnector) -> None:
    iid = await erp_integration(tenant, page_size=10)
    run_id = await start(tenant, iid)
    ledger = ledger_for(CUSTOMERS, ITEMS)
    expected_total = sum(int(i.original_amount.amount * 100) for i in ledger.items.values())
    worker = _worker(iid)
    try:
        assert worker.stdout is not None
        deadline = time.monotonic() + 90
        while True:  # kill it once it is well into the open items
            line = worker.stdout.readline()
            assert line, "the worker died on its own"
            if line.startswith("pulled ") and int(line.split()[1]) >= 12:
                break
            assert time.monotonic() < deadline
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    status, rows_in, count, _, _ = await _state(tenant.tenant_id, run_id)
    assert status == "running" and 0 < count < CUSTOMERS * ITEMS, (status, count)
    assert rows_in == CUSTOMERS + count  # the counts are committed with the pages

    worker = _worker(iid)
    try:
        deadline = time.monotonic() + 120
        while (state := await _state(tenant.tenant_id, run_id))[0] != "succeeded":
            assert worker.poll() is None, "the restarted worker died"
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    status, rows_in, count, total, balance = state
    assert count == CUSTOMERS * ITEMS  # none lost
    assert rows_in == CUSTOMERS + CUSTOMERS * ITEMS  # none counted twice
    assert total == expected_total == balance  # each applied once, all rebalanced
