"""Two collectors replacing the segment rule set with the same If-Match at once on
PostgreSQL: one writes, the other gets 412 (the rule-set lock makes the second compare
with what the first wrote)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import TenantClient
from tests.strategies.helpers import SEGMENTS


async def test_concurrent_conditional_replacements_write_once(
        tenant: TenantClient, api_clients: Any) -> None:
    assert (await tenant.api.put("/v1/segments", json=SEGMENTS)).status_code == 200
    tag = (await tenant.api.get("/v1/segments")).headers["etag"]
    clients: list[httpx.AsyncClient] = api_clients(tenant, 4)
    answers = await asyncio.gather(*(c.put("/v1/segments", headers={"If-Match": tag}, json={
        "segments": [{"code": f"all{i}", "name": "All", "rule": {"all": []}}]})
        for i, c in enumerate(clients)))
    assert sorted(r.status_code for r in answers) == [200, 412, 412, 412], \
        [r.text for r in answers]
    [won] = [r for r in answers if r.status_code == 200]
    now = (await tenant.api.get("/v1/segments")).json()
    assert [s["code"] for s in now["segments"]] == [won.json()["segments"][0]["code"]]
