"""A reconciliation killed (SIGKILL) between the provider re-fetch and the commit, then run
again: one payment, applied once (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select

from cartera.integrations import webhooks
from cartera.integrations.models import WebhookDelivery, WebhookEvent
from cartera.jobs.registry import JobContext
from cartera.payments.models import Payment
from cartera.settings import get_settings
from tests.conftest import TEST_EGRESS_ALLOW, TenantClient
from tests.payments.mp import debt, integration, mercadopago, notify

__all__ = ["mercadopago"]
pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")
ROOT = Path(__file__).resolve().parents[2]


async def test_a_crash_before_the_commit_applies_the_payment_once_on_the_rerun(
        tenant: TenantClient, app: Litestar, http: Any, mercadopago: Any) -> None:
    integ = await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "K-1", "100.00")
    link = (await tenant.api.post("/v1/payment-links", json={
        "debtor_id": debtor_id, "currency": "PEN"})).json()
    mercadopago.add_payment("8800", "100.00", external_reference=f"plink_{link['id']}")
    await notify(http, integ["id"], "8800", notification_id=88)
    async with app.state.ctx.sessionmaker() as session:
        delivery_id = await session.scalar(select(WebhookDelivery.id).where(
            WebhookDelivery.integration_id == integ["id"]))
    env = {**os.environ, "CARTERA_DATABASE_URL": get_settings().database_url,
           "CARTERA_PLUGIN_TIMEOUT": "5", "CARTERA_LOG_LEVEL": "ERROR",
           "CARTERA_EGRESS_ALLOW": TEST_EGRESS_ALLOW}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.payments.reconcile_crash_worker", str(delivery_id),
        str(tenant.tenant_id), cwd=ROOT, env=env, stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == -9 and b"applied recorded, dying" in out, out
    fetches = [r for r in mercadopago.server.requests if r.path == "/v1/payments/8800"]
    assert len(fetches) == 1  # the worker re-fetched, applied, and died before its commit
    async with app.state.ctx.sessionmaker() as session:
        assert (await session.scalars(select(Payment.id).where(
            Payment.tenant_id == tenant.tenant_id))).all() == []
        assert (await session.scalar(select(WebhookEvent.status).where(
            WebhookEvent.integration_id == integ["id"]))) == "received"
    # the job again (a retry after the crash): the event still received is reconciled
    for _ in range(2):
        await webhooks.process_delivery(JobContext(
            job_id=0, tenant_id=tenant.tenant_id, payload={"delivery_id": delivery_id},
            sessionmaker=app.state.ctx.sessionmaker))
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.execute(select(Payment.amount_minor, Payment.status).where(
            Payment.tenant_id == tenant.tenant_id))).all()
        status = await session.scalar(select(WebhookEvent.status).where(
            WebhookEvent.integration_id == integ["id"]))
    assert rows == [(10000, "applied")] and status == "processed"
