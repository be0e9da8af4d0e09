"""The planner's gate is judged once per distinct gate key: two debtors share a verdict only
when everything the gate reads of them is the same."""

from __future__ import annotations

from typing import Any

import cartera_compliance_ar
from litestar import Litestar

from cartera.db.engine import tenant_session
from cartera.plugins.host import PluginHost
from cartera.strategies.planner import plan_tenant
from tests.segmentation.test_segments import debtor
from tests.strategies.helpers import actions, message_step, segments, strategy, template

CABA = {"country": "AR", "subdivision": "AR-C",
        "timezone": "America/Argentina/Buenos_Aires"}


async def test_a_work_phone_is_its_own_gate_key(app: Litestar, make_tenant: Any) -> None:
    t = await make_tenant(country="AR", currency="ARS")
    seg = await segments(t)
    sms = await template(t)
    ids = {}
    for ref, label in (("home", "casa"), ("work", "Trabajo"), ("home2", "casa")):
        ids[ref] = await debtor(t, ref, ("ARS", "100.00", 10), **CABA, contact_points=[
            {"kind": "phone", "value": f"+54114000000{len(ids)}", "consent": "granted",
             "label": label}])
    await strategy(t, "a", [seg["late"]], [message_step("one", sms)])
    async with tenant_session(app.state.ctx.sessionmaker, t.tenant_id) as session:
        host = PluginHost()  # the Argentine pack: a work phone is not called in CABA
        host.add_plugin(cartera_compliance_ar, "compliance_ar", "cartera-compliance-ar",
                        "0.1.0")
        result = await plan_tenant(session, host, t.tenant_id)
    assert result.planned == 3
    got = {a["debtor_id"]: a for a in await actions(t)}
    work = got[ids["work"]]
    assert work["status"] == "denied"
    assert "work_contact_point" in [r["code"] for r in work["verdict"]["reasons"]]
    for ref in ("home", "home2"):
        assert got[ids[ref]]["status"] != "denied", got[ids[ref]]
    # The two home phones differ only in their values: one key, one judgement.
    assert result.verdicts["gate_calls"] == 2
