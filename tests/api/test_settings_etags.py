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
