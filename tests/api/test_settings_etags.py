"""Settings-style PUTs (planner settings and contact policy, the offer policy; an ERP
integration's sync settings in ``tests/erpsync/test_settings_etag.py``) take ``If-Match``:
their GET carries an ``ETag`` (a digest of what it answers, defaults included), and a PUT
with a stale one is 412 and changes nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.test_bad_input import assert_problem
from tests.api.test_etags import _conditional_update
from tests.conftest import TenantClient
from tests.offers.helpers import client_with


async def stale_write_is_refused(t: TenantClient, path: str, body: dict[str, Any]) -> None:
    before = await t.api.get(path)
    tag = before.headers["etag"]
    assert (await t.api.put(path, json=body)).status_code == 200  # someone else's write
    stale = await t.api.put(path, json=body, headers={"If-Match": tag})
    assert_problem(stale, 412, "precondition_failed", "If-Match")


async def test_planner_settings(tenant: TenantClient) -> None:
    path = "/v1/strategies/settings"
    default = await tenant.api.get(path)
    assert default.headers["etag"].startswith('"')
    await _conditional_update(tenant, path, {"plan_hour": 7, "weekly_cap": 3},
                              {"plan_hour": 8, "min_gap_hours": 12}, method="PUT")
    assert (await tenant.api.get(path)).json()["plan_hour"] == 8
    await stale_write_is_refused(tenant, path, {"plan_hour": 9})
    after = await tenant.api.get(path)
    assert after.json()["plan_hour"] == 9


async def test_offer_policy(tenant: TenantClient, app: Litestar,
                            http: AsyncTestClient[Litestar]) -> None:
    admin, _ = await client_with(app, http, tenant, "collector", extra=("offers:admin",))
    t = dataclasses.replace(tenant, api=admin)
    path = "/v1/offer-policy"
    rule = {"role": "collector", "max_discount_percent": "5"}
    await _conditional_update(t, path, {"rules": [rule], "max_validity_days": 10},
                              {"rules": [rule], "max_validity_days": 20}, method="PUT")
    assert (await admin.get(path)).json()["max_validity_days"] == 20
    await stale_write_is_refused(t, path, {"rules": [rule], "max_validity_days": 5})
    assert (await admin.get(path)).json()["max_validity_days"] == 5


async def test_segment_rule_set(tenant: TenantClient, app: Litestar) -> None:
    from cartera.clock import today_in
    from cartera.segmentation.service import evaluate
    from tests.strategies.helpers import SEGMENTS, late_debtor

    path = "/v1/segments"
    other = {"segments": [{"code": "all", "name": "All", "rule": {"all": []}}]}
    await _conditional_update(tenant, path, SEGMENTS, other, method="PUT")
    await stale_write_is_refused(tenant, path, SEGMENTS)
    # The tag names the rules, not the debtors they hold: a run that moves debtors into
    # the segments leaves a collector's If-Match valid.
    tag = (await tenant.api.get(path)).headers["etag"]
    await late_debtor(tenant, "ET-1")
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        await evaluate(session, tenant.tenant_id, today_in("America/Lima"))
        await session.commit()
    moved = await tenant.api.get(path)
    assert sum(s["debtors"] for s in moved.json()["segments"]) == 1
    assert moved.headers["etag"] == tag
    assert (await tenant.api.put(path, json=other, headers={"If-Match": tag})).status_code == 200


async def test_collection_stages(tenant: TenantClient) -> None:
    path = "/v1/stages"
    ranges = [("current", 0, 0), ("late", 1, 60), ("very_late", 61, None)]
    fewer = [("current", 0, 0), ("late", 1, None)]

    def stage_set(rows: list[tuple[str, int, int | None]]) -> dict[str, Any]:
        return {"stages": [{"code": c, "name": c.title(), "min_dpd": lo, "max_dpd": hi}
                           for c, lo, hi in rows]}

    await _conditional_update(tenant, path, stage_set(ranges), stage_set(fewer), method="PUT")
    await stale_write_is_refused(tenant, path, stage_set(ranges))
