"""What a message says about a debt: computed as of the send instant, and only about the
debtor's own obligations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer
from sqlalchemy import update

from cartera import clock
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.portfolio.models import Obligation
from cartera.settings import get_settings
from tests.conftest import TenantClient
from tests.messaging.test_batch import _debtors, _send, _setup, provider  # noqa: F401
from tests.messaging.test_sending import RunJobs
from tests.payments.test_allocation import days_ago, obligation


async def test_amounts_are_as_of_the_send_instant(tenant: TenantClient,
                                                  provider: FakeHTTPServer,  # noqa: F811
                                                  run_jobs: RunJobs) -> None:
    integration, template = await _setup(tenant, provider)  # "... debes {{ balance.overdue }}."
    [debtor] = await _debtors(tenant, 1)
    due = (clock.today_in("America/Lima") + timedelta(days=5)).isoformat()
    o = await obligation(tenant, debtor, "F-ASOF", "1250.50", due)
    # Two days past due now, with the stored summary as it was written (nothing overdue):
    # the calendar moved, no money did, so no write refreshed it.
    engine = make_engine(get_settings().database_url)
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Obligation).where(Obligation.id == int(o["id"])).values(
            due_date=clock.today_in("America/Lima") - timedelta(days=2)))
        await session.commit()
    await engine.dispose()
    [sent] = await _send(tenant, [debtor], integration, template)
    await run_jobs()
    row = (await tenant.api.get(f"/v1/interactions/{sent}")).json()
    assert row["status"] == "sent"
    said = "Hola Ana, debes S/ 1,250.50."  # babel may put a no-break space after S/
    assert row["content"]["text"].replace("\xa0", " ") == said
    [request] = provider.requests_to("POST", "/messages")
    assert request.json()["text"].replace("\xa0", " ") == said
    balance = (await tenant.api.get(f"/v1/debtors/{debtor}/balance")).json()
    assert balance["balances"][0]["days_past_due"] == 2


@pytest.fixture
async def refs(tenant: TenantClient, make_tenant: Any) -> dict[str, int]:
    mine, neighbour = await _debtors(tenant, 2)
    other = await make_tenant()
    [stranger] = await _debtors(other, 1)
    return {
        "debtor": mine,
        "own": int((await obligation(tenant, mine, "OWN-1", "10.00", days_ago(3)))["id"]),
        "neighbour": int((await obligation(tenant, neighbour, "NB-1", "10.00",
                                           days_ago(3)))["id"]),
        "foreign": int((await obligation(other, stranger, "FX-1", "10.00", days_ago(3)))["id"]),
    }


def _refused(r: Any, param: str) -> None:
    assert r.status_code == 404, r.text
    assert (r.json()["code"], r.json()["param"]) == ("unknown_obligation", param)


@pytest.mark.parametrize("bad", ["neighbour", "foreign", "missing"])
async def test_obligation_ids_must_be_the_debtors_own(
        tenant: TenantClient, provider: FakeHTTPServer,  # noqa: F811
        refs: dict[str, int], bad: str) -> None:
    integration, template = await _setup(tenant, provider)
    debtor, own = refs["debtor"], refs["own"]
    ids = [own, refs.get(bad, 2**62)]
    _refused(await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template,
        "obligation_ids": ids}), "obligation_ids[1]")
    _refused(await tenant.api.post("/v1/interactions", json={
        "debtor_id": debtor, "channel": "voice", "outcome": "no_answer",
        "obligation_ids": ids}), "obligation_ids[1]")
    _refused(await tenant.api.post(f"/v1/templates/{template}/preview", json={
        "debtor_id": debtor, "obligation_ids": ids}), "obligation_ids[1]")
    listed = (await tenant.api.get("/v1/interactions", params={"debtor_id": debtor})).json()
    assert listed["data"] == []  # nothing stored
    ok = await tenant.api.post("/v1/interactions", json={
        "debtor_id": debtor, "channel": "voice", "outcome": "no_answer",
        "obligation_ids": [own]})
    assert ok.status_code == 201, ok.text
    assert ok.json()["obligation_ids"] == [own]
