"""An ERP integration's sync settings take ``If-Match`` (see tests/api/test_settings_etags.py)."""

from __future__ import annotations

from tests.api.test_etags import _conditional_update
from tests.api.test_settings_etags import stale_write_is_refused
from tests.conftest import TenantClient
from tests.erpsync.fake_erp import FakeErpConnector
from tests.erpsync.test_sync import erp_integration


async def test_sync_settings_take_if_match(tenant: TenantClient,
                                          fake: FakeErpConnector) -> None:
    iid = await erp_integration(tenant)
    path = f"/v1/integrations/{iid}/sync-settings"
    await _conditional_update(tenant, path, {"every_minutes": 60},
                              {"at_times": ["02:00"]}, method="PUT")
    got = await tenant.api.get(path)
    assert got.json()["at_times"] == ["02:00"]
    await stale_write_is_refused(tenant, path, {"every_minutes": 30})
    assert (await tenant.api.get(path)).json()["every_minutes"] == 30
