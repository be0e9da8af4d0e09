"""The decision log is kept for the configured retention (never under Chile's two years),
then purged in bounded batches; 0 keeps it forever."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from litestar import Litestar
from sqlalchemy import func, select

from cartera.compliance import decisions, jobs
from cartera.compliance.models import ComplianceDecision
from cartera.db.base import utcnow
from cartera.settings import MIN_DECISION_RETENTION_DAYS, decision_retention, get_settings
from tests.conftest import TenantClient

ALLOW = {"decision": "allow", "until": None, "reasons": [{"source": "gate", "code": "ok"}]}


async def _log(app: Litestar, tenant_id: int, ages_in_days: list[int]) -> None:
    now = utcnow()
    async with app.state.ctx.sessionmaker() as session:
        found = [row for age in ages_in_days
                 for row in decisions.rows(tenant_id, "send", now - timedelta(days=age), ALLOW,
                                           "sms", None)]
        await decisions.record(session, found)
        await session.commit()


async def _ages(app: Litestar, tenant_id: int) -> list[int]:
    now = utcnow()
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant_id
        made = (await session.scalars(select(ComplianceDecision.decided_at).where(
            ComplianceDecision.tenant_id == tenant_id))).all()
    return sorted((now - at).days for at in made)


async def test_decisions_past_the_retention_go_in_batches_and_the_rest_stay(
        app: Litestar, tenant: TenantClient, make_tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    other = await make_tenant()
    days = get_settings().compliance_decision_retention_days
    await _log(app, tenant.tenant_id, [days + 30] * 5 + [days + 1] * 2 + [days - 1, 3, 0])
    await _log(app, other.tenant_id, [days + 400, 10])
    monkeypatch.setattr(jobs, "BATCH", 2)  # four batches for the seven old rows of the two

    await jobs.purge_old_decisions(app.state.ctx.sessionmaker, None)

    assert await _ages(app, tenant.tenant_id) == [0, 3, days - 1]
    assert await _ages(app, other.tenant_id) == [10]


async def test_a_purge_does_at_most_its_batches_per_run(
        app: Litestar, tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    days = get_settings().compliance_decision_retention_days
    await _log(app, tenant.tenant_id, [days + 5] * 7)
    monkeypatch.setattr(jobs, "BATCH", 2)
    monkeypatch.setattr(jobs, "MAX_BATCHES", 2)

    await jobs.purge_old_decisions(app.state.ctx.sessionmaker, None)
    assert len(await _ages(app, tenant.tenant_id)) == 3  # the next minute takes the rest
    await jobs.purge_old_decisions(app.state.ctx.sessionmaker, None)
    assert await _ages(app, tenant.tenant_id) == []


async def test_zero_keeps_the_log_forever(
        app: Litestar, tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    await _log(app, tenant.tenant_id, [5000])
    forever = replace(get_settings(), compliance_decision_retention_days=0)
    monkeypatch.setattr(jobs, "get_settings", lambda: forever)
    await jobs.purge_old_decisions(app.state.ctx.sessionmaker, None)
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        kept = await session.scalar(select(func.count()).select_from(ComplianceDecision).where(
            ComplianceDecision.tenant_id == tenant.tenant_id))
    assert kept == 1


def test_a_retention_under_two_years_is_refused() -> None:
    assert decision_retention("0") == 0
    assert decision_retention(str(MIN_DECISION_RETENTION_DAYS)) == MIN_DECISION_RETENTION_DAYS
    with pytest.raises(ValueError, match="at least 730 days"):
        decision_retention("365")
