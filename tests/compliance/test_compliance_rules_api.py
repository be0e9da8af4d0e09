"""The packs' law rules through the real app: charges-check for Mexico and Argentina, Peru's
moratory interest with the tenant's BCRP figure, prescription in the answer (no guessed
date), and the gate reading a work contact point for CABA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import cartera_compliance_ar
import cartera_compliance_br
import cartera_compliance_cl
import cartera_compliance_co
import cartera_compliance_mx
import cartera_compliance_pe
import pytest
from litestar import Litestar

from cartera import clock
from cartera.messaging import gate
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import ContactPoint, Debtor
from tests.conftest import TenantClient

PACKS = {"compliance_pe": cartera_compliance_pe, "compliance_mx": cartera_compliance_mx,
         "compliance_co": cartera_compliance_co, "compliance_cl": cartera_compliance_cl,
         "compliance_ar": cartera_compliance_ar, "compliance_br": cartera_compliance_br}
ZONES = {"PE": "America/Lima", "MX": "America/Mexico_City",
         "AR": "America/Argentina/Buenos_Aires"}


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    packs = PluginHost()
    for name, module in PACKS.items():
        packs.add_plugin(module, name, f"cartera-{name.replace('_', '-')}", "0.1.0")
    for where in ("cartera.compliance.routes", "cartera.integrations.routes"):
        monkeypatch.setattr(f"{where}.current_host", lambda: packs)
    return packs


async def _overdue_debtor(t: TenantClient, country: str, currency: str) -> int:
    r = await t.api.post("/v1/debtors", json={"external_ref": f"{country}-1", "name": "Ana",
                                              "country": country})
    assert r.status_code == 201, r.text
    debtor_id: int = r.json()["id"]
    due = clock.today_in(ZONES[country]) - timedelta(days=40)
    r = await t.api.post("/v1/obligations", json={
        "external_ref": f"{country}-1-1", "debtor_id": debtor_id, "kind": "invoice",
        "currency": currency, "original_amount": "1000", "due_date": due.isoformat()})
    assert r.status_code == 201, r.text
    return debtor_id


async def _charges(t: TenantClient, debtor_id: int, **params: Any) -> Any:
    r = await t.api.get(f"/v1/debtors/{debtor_id}/charges-check", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(("country", "currency", "fee_code"), [
    ("MX", "MXN", "fee_not_reported_lawful"), ("AR", "ARS", "only_actual_expenses")])
async def test_charges_check_answers_for_mexico_and_argentina(
        make_tenant: Any, host: PluginHost, country: str, currency: str,
        fee_code: str) -> None:
    t = await make_tenant(country=country, currency=currency)
    body = await _charges(t, await _overdue_debtor(t, country, currency))
    found = {f["kind"]: f for f in body["findings"]}
    assert set(found) == {"collection_fee", "late_penalty", "moratory_interest",
                          "bureau_report"}
    assert {f["source"] for f in found.values()} == {f"compliance_{country.lower()}"}
    assert (found["collection_fee"]["allowed"], found["collection_fee"]["code"]) == (
        False, fee_code)
    assert found["bureau_report"]["allowed"] is True
    assert all(f["rule_ref"] for f in found.values())
    (prescription,) = body["prescription"]
    assert prescription["time_barred_from"] is None
    assert (prescription["code"], prescription["verification"]) == (
        "prescription_period_unknown", "unverified")


async def test_peru_moratory_interest_needs_the_tenants_bcrp_figure(
        tenant: TenantClient, host: PluginHost) -> None:
    debtor_id = await _overdue_debtor(tenant, "PE", "PEN")
    found = {f["kind"]: f for f in (await _charges(tenant, debtor_id))["findings"]}
    assert (found["moratory_interest"]["allowed"], found["moratory_interest"]["code"]) == (
        False, "moratory_rate_unknown")
    assert found["collection_fee"]["allowed"] is False
    r = await tenant.api.post("/v1/integrations", json={
        "name": "PE rules", "provider_kind": "compliance", "provider_name": "compliance_pe",
        "config": {"moratory_rate_cap_percent": "12.5"}})
    assert r.status_code == 201, r.text
    found = {f["kind"]: f for f in (await _charges(tenant, debtor_id))["findings"]}
    assert (found["moratory_interest"]["allowed"], found["moratory_interest"]["code"]) == (
        True, "moratory_interest_only")
    assert "12.5 %" in found["moratory_interest"]["message"]
    assert found["collection_fee"]["allowed"] is False


async def test_a_negative_bcrp_figure_is_refused_with_the_field_named(
        tenant: TenantClient, host: PluginHost) -> None:
    r = await tenant.api.post("/v1/integrations", json={
        "name": "PE rules", "provider_kind": "compliance", "provider_name": "compliance_pe",
        "config": {"moratory_rate_cap_percent": "-2"}})
    assert r.status_code == 422, r.text
    assert "moratory_rate_cap_percent" in r.text


async def test_the_gate_reads_a_work_contact_point_for_caba(app: Litestar,
                                                            host: PluginHost) -> None:
    debtor = Debtor(id=10_000_001, tenant_id=1, external_ref="g", kind="person", name="Ana",
                    country="AR", subdivision="AR-C",
                    timezone="America/Argentina/Buenos_Aires", attributes={})
    tuesday = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 11:00 in Buenos Aires

    def phone(label: str | None) -> ContactPoint:
        return ContactPoint(id=1, debtor_id=debtor.id, kind="phone", value="+541140000000",
                            label=label, consent="granted", opted_out_channels=[],
                            origin="debtor_provided")

    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = 1
        work = await gate.judge(session, host, debtor, phone("Trabajo"), "voice", tuesday)
        home = await gate.judge(session, host, debtor, phone("casa"), "voice", tuesday)
    assert (work.decision, work.reasons[0].code) == ("deny", "work_contact_point")
    assert home.decision == "allow"


async def test_a_hypothetical_contact_carries_age_and_work_use(tenant: TenantClient,
                                                               host: PluginHost) -> None:
    mx = {"country": "MX", "timezone": "America/Mexico_City", "recipient_age": 15}
    r = await tenant.api.post("/v1/compliance/check", json={
        "channel": "sms", "planned_at": "2026-03-03T10:00:00-06:00", "contact": mx})
    assert r.status_code == 200, r.text
    verdict = r.json()["verdict"]
    assert (verdict["decision"], verdict["reasons"][0]["code"]) == ("deny", "minor_recipient")
    caba = {"country": "AR", "timezone": "America/Argentina/Buenos_Aires",
            "subdivision": "AR-C", "contact_point_use": "work"}
    r = await tenant.api.post("/v1/compliance/check", json={
        "channel": "email", "planned_at": "2026-03-03T11:00:00-03:00", "contact": caba})
    verdict = r.json()["verdict"]
    assert (verdict["decision"], verdict["reasons"][0]["code"]) == ("deny",
                                                                    "work_contact_point")
    bad = await tenant.api.post("/v1/compliance/check", json={
        "channel": "sms", "planned_at": "2026-03-03T10:00:00-06:00",
        "contact": {**mx, "recipient_age": -1}})
    assert bad.status_code in (400, 422), bad.text
