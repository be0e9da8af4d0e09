"""/v1/compliance and the gate with the shipped country packs: packs and rules, checks of
hypothetical contacts (nothing written), the tenant's stricter pack config, the policy for
countries with no pack, the facts the gate feeds the packs, and the report."""

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
from sqlalchemy import func, select

from cartera.messaging import gate
from cartera.messaging.models import Interaction
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import ContactPoint, Debtor
from tests.conftest import TenantClient

PACKS = {"compliance_pe": cartera_compliance_pe, "compliance_mx": cartera_compliance_mx,
         "compliance_co": cartera_compliance_co, "compliance_cl": cartera_compliance_cl,
         "compliance_ar": cartera_compliance_ar, "compliance_br": cartera_compliance_br}
SUNDAY_NIGHT = "2026-03-01T21:30:00-05:00"  # Lima


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """A host holding the six shipped packs, used by the compliance, integration and
    messaging routes."""
    packs = PluginHost()
    for name, module in PACKS.items():
        packs.add_plugin(module, name, f"cartera-{name.replace('_', '-')}", "0.1.0")
    for where in ("cartera.compliance.routes", "cartera.integrations.routes"):
        monkeypatch.setattr(f"{where}.current_host", lambda: packs)
    return packs


def explicit(country: str = "PE", tz: str = "America/Lima", **extra: Any) -> dict[str, Any]:
    return {"country": country, "timezone": tz, **extra}


async def check(t: TenantClient, **body: Any) -> Any:
    return await t.api.post("/v1/compliance/check", json=body)


async def test_packs_list_rules_with_legal_references(tenant: TenantClient,
                                                      host: PluginHost) -> None:
    r = await tenant.api.get("/v1/compliance/packs")
    assert r.status_code == 200, r.text
    packs = {p["country"]: p for p in r.json()["data"]}
    assert set(packs) == {"PE", "MX", "CO", "CL", "AR", "BR"}
    pe = packs["PE"]
    assert pe["version"] == "0.2.0"
    assert pe["calendar_version"].startswith("holidays ")
    rules = {rule["code"]: rule for rule in pe["rules"]}
    assert rules["outside_hours"]["legal_ref"] == "Ley 29571 art. 62.b"
    assert {rule["verification"] for p in packs.values() for rule in p["rules"]} >= {
        "verified", "secondary", "unverified"}
    assert "hours_apply_to" in str(pe["config_schema"])


async def test_check_defers_a_sunday_night_sms_in_peru_and_writes_nothing(
        tenant: TenantClient, host: PluginHost, app: Litestar) -> None:
    r = await check(tenant, channel="sms", planned_at=SUNDAY_NIGHT, contact=explicit())
    assert r.status_code == 200, r.text
    body = r.json()
    verdict = body["verdict"]
    assert verdict["decision"] == "defer"
    assert datetime.fromisoformat(verdict["until"]) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert verdict["reasons"][0] == {"code": "closed_day", "message": "Saturday or Sunday",
                                     "source": "compliance_pe",
                                     "rule_ref": "Ley 29571 art. 62.b"}
    assert body["packs"][0]["calendar_version"].startswith("holidays ")
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction).where(
            Interaction.tenant_id == tenant.tenant_id)) == 0


async def test_check_a_debtor_on_a_national_holiday(tenant: TenantClient,
                                                    host: PluginHost) -> None:
    r = await tenant.api.post("/v1/debtors", json={
        "external_ref": "HOL-1", "name": "Ana", "country": "PE",
        "contact_points": [{"kind": "phone", "value": "987650001", "consent": "granted"}]})
    assert r.status_code == 201, r.text
    debtor_id = r.json()["id"]
    r = await check(tenant, channel="voice", planned_at="2026-12-08T10:00:00-05:00",
                    debtor_id=debtor_id)
    assert r.status_code == 200, r.text
    verdict = r.json()["verdict"]
    assert (verdict["decision"], verdict["reasons"][0]["code"]) == ("defer", "public_holiday")
    assert datetime.fromisoformat(verdict["until"]) == datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("body", "param"), [
    ({"planned_at": "2026-03-01T21:30:00", "contact": explicit()}, "planned_at"),
    ({"planned_at": SUNDAY_NIGHT, "contact": explicit(tz="Europe/Madrid")}, "contact.timezone"),
    ({"planned_at": SUNDAY_NIGHT, "contact": explicit(tz="Mars/Base")}, "contact.timezone"),
    ({"planned_at": SUNDAY_NIGHT, "contact": explicit(subdivision="PE-XXX")},
     "contact.subdivision"),
    ({"planned_at": SUNDAY_NIGHT}, "debtor_id"),
])
async def test_bad_input_is_a_precise_422(tenant: TenantClient, host: PluginHost,
                                          body: dict[str, Any], param: str) -> None:
    r = await check(tenant, channel="sms", **body)
    assert r.status_code == 422, r.text
    assert r.json()["param"] == param


async def test_countries_without_a_pack_follow_the_tenant_setting(tenant: TenantClient,
                                                                  host: PluginHost) -> None:
    uy = explicit(country="UY", tz="America/Montevideo")
    r = await check(tenant, channel="sms", planned_at=SUNDAY_NIGHT, contact=uy)
    assert r.json()["verdict"]["decision"] == "allow"
    assert r.json()["verdict"]["reasons"][0]["code"] == "no_compliance_pack"
    r = await tenant.api.patch("/v1/compliance/settings", json={"unknown_country": "deny"})
    assert r.status_code == 200, r.text
    assert (await tenant.api.get("/v1/compliance/settings")).json()["unknown_country"] == "deny"
    r = await check(tenant, channel="sms", planned_at=SUNDAY_NIGHT, contact=uy)
    verdict = r.json()["verdict"]
    assert (verdict["decision"], verdict["reasons"][0]["code"]) == ("deny", "no_compliance_pack")


async def test_a_tenant_pack_config_may_tighten_never_loosen(tenant: TenantClient,
                                                             host: PluginHost) -> None:
    looser = {"name": "PE rules", "provider_kind": "compliance",
              "provider_name": "compliance_pe", "config": {"hours_apply_to": ["sms"]}}
    r = await tenant.api.post("/v1/integrations", json=looser)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("looser_than_law", "config.hours_apply_to")
    tuesday_8am = "2026-03-03T08:00:00-05:00"
    r = await check(tenant, channel="sms", planned_at=tuesday_8am, contact=explicit())
    assert r.json()["verdict"]["decision"] == "allow"
    stricter = {**looser, "config": {"not_before": "09:00:00"}}
    r = await tenant.api.post("/v1/integrations", json=stricter)
    assert r.status_code == 201, r.text
    r = await check(tenant, channel="sms", planned_at=tuesday_8am, contact=explicit())
    verdict = r.json()["verdict"]
    assert verdict["decision"] == "defer"
    assert datetime.fromisoformat(verdict["until"]) == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


async def test_mx_first_contact_disclosures_are_checked_on_the_content(
        tenant: TenantClient, host: PluginHost) -> None:
    mx = explicit(country="MX", tz="America/Mexico_City", is_first_contact=True)
    r = await check(tenant, channel="sms", planned_at="2026-03-03T10:00:00-06:00", contact=mx,
                    content={"text": "Pague hoy."})
    verdict = r.json()["verdict"]
    assert verdict["decision"] == "deny"
    assert verdict["reasons"][0]["code"] == "first_contact_disclosure_missing"


def _debtor(country: str, tz: str, **attributes: Any) -> Debtor:
    return Debtor(id=10_000_001, tenant_id=1, external_ref="g", kind="person", name="Ana",
                  country=country, subdivision=None, timezone=tz, attributes=attributes)


def _phone(consent: str = "granted") -> ContactPoint:
    return ContactPoint(id=1, debtor_id=10_000_001, kind="phone", value="+573001234567",
                        consent=consent, opted_out_channels=[], origin="debtor_provided")


async def _judge(app: Litestar, host: PluginHost, debtor: Debtor, cp: ContactPoint,
                 channel: str, at: datetime) -> Any:
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = 1
        return await gate.judge(session, host, debtor, cp, channel, at)


async def test_the_gate_feeds_litigation_and_authorised_channels(app: Litestar,
                                                                 host: PluginHost) -> None:
    weekday = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    sued = await _judge(app, host, _debtor("CL", "America/Santiago", in_litigation=True),
                        _phone(), "sms", weekday)
    assert (sued.decision, sued.reasons[0].code) == ("deny", "in_litigation")
    bogota = _debtor("CO", "America/Bogota")
    unknown = await _judge(app, host, bogota, _phone("unknown"), "sms", weekday)
    assert (unknown.decision, unknown.reasons[0].code) == ("deny", "channel_not_authorised")
    declared = _debtor("CO", "America/Bogota", authorized_channels=["sms"])
    assert (await _judge(app, host, declared, _phone("unknown"), "sms", weekday)
            ).decision == "allow"


async def test_debtor_data_outside_the_country_is_denied_not_allowed(
        app: Litestar, host: PluginHost) -> None:
    wrong = _debtor("PE", "Europe/Madrid")
    verdict = await _judge(app, host, wrong, _phone(), "sms",
                           datetime(2026, 3, 3, 15, 0, tzinfo=UTC))
    assert (verdict.decision, verdict.reasons[0].code) == ("deny", "invalid_contact_data")
    assert "debtor_timezone" in verdict.reasons[0].message


async def test_report_counts_verdicts_per_rule_with_median_deferral(
        tenant: TenantClient, host: PluginHost, app: Litestar) -> None:
    start = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    reason = {"code": "outside_hours", "message": "m", "source": "compliance_pe",
              "rule_ref": "Ley 29571 art. 62.b"}
    rows = [("defer", timedelta(hours=1)), ("defer", timedelta(hours=3)),
            ("defer", timedelta(hours=10)), ("allow", None)]
    async with app.state.ctx.sessionmaker() as session:
        for i, (decision, wait) in enumerate(rows):
            at = start + timedelta(minutes=i)
            session.add(Interaction(
                tenant_id=tenant.tenant_id, direction="outbound", channel="sms",
                status="deferred" if wait else "sent", created_at=at,
                not_before=at + wait if wait else None,
                verdict={"decision": decision, "reasons": [
                    reason if wait else {**reason, "code": "allowed"}]}))
        await session.commit()
    r = await tenant.api.get("/v1/compliance/report", params={
        "period_start": "2026-03-02T00:00:00Z", "period_end": "2026-03-03T00:00:00Z"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contacts"] == 4
    by_code = {row["code"]: row for row in body["rules"]}
    assert by_code["outside_hours"] == {
        "source": "compliance_pe", "code": "outside_hours", "allowed": 0, "deferred": 3,
        "denied": 0, "median_deferral_seconds": 3 * 3600}
    assert by_code["allowed"]["allowed"] == 1
    bad = await tenant.api.get("/v1/compliance/report", params={
        "period_start": "2026-03-03T00:00:00Z", "period_end": "2026-03-02T00:00:00Z"})
    assert bad.status_code == 422


async def test_charges_check_caps_chilean_collection_fees(make_tenant: Any,
                                                          host: PluginHost) -> None:
    from cartera import clock

    cl = await make_tenant(country="CL", currency="CLP")
    r = await cl.api.post("/v1/debtors", json={"external_ref": "CL-1", "name": "Juan",
                                               "country": "CL"})
    assert r.status_code == 201, r.text
    debtor_id = r.json()["id"]
    due = clock.today_in("America/Santiago") - timedelta(days=45)
    r = await cl.api.post("/v1/obligations", json={
        "external_ref": "CL-1-1", "debtor_id": debtor_id, "kind": "invoice",
        "currency": "CLP", "original_amount": "4000000", "due_date": due.isoformat()})
    assert r.status_code == 201, r.text
    r = await cl.api.get(f"/v1/debtors/{debtor_id}/charges-check",
                         params={"uf_value": "40000"})
    assert r.status_code == 200, r.text
    (finding,) = [f for f in r.json()["findings"] if f["kind"] == "collection_fee"]
    assert finding["source"] == "compliance_cl"
    assert (finding["kind"], finding["allowed"]) == ("collection_fee", True)
    assert (finding["max_amount"], finding["currency"]) == ("192000", "CLP")
    assert finding["rule_ref"] == "Ley 19.496 art. 37"
    r = await cl.api.get(f"/v1/debtors/{debtor_id}/charges-check")
    assert [f["code"] for f in r.json()["findings"] if f["kind"] == "collection_fee"] == [
        "uf_value_required"]


async def test_charges_check_refuses_a_bad_uf_value(tenant: TenantClient,
                                                    host: PluginHost) -> None:
    r = await tenant.api.post("/v1/debtors", json={"external_ref": "UF", "name": "A",
                                                   "country": "PE"})
    for bad in ("0", "-3", "NaN"):
        r2 = await tenant.api.get(f"/v1/debtors/{r.json()['id']}/charges-check",
                                  params={"uf_value": bad})
        assert r2.status_code == 422, r2.text
        assert r2.json()["param"] == "uf_value"


async def test_a_template_is_checked_for_content_rules_only(tenant: TenantClient,
                                                            host: PluginHost) -> None:
    r = await tenant.api.post("/v1/templates", json={
        "code": "judicial", "channel": "sms", "locale": "es-PE", "name": "j",
        "body": "NOTIFICACIÓN JUDICIAL: {{ debtor.first_name }}, pague {{ balance.overdue }}."})
    assert r.status_code == 201, r.text
    template_id = r.json()["id"]
    r = await tenant.api.post(f"/v1/templates/{template_id}/compliance", json={})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["country"], body["packs"]) == ("PE", ["compliance_pe"])
    assert [(f["code"], f["source"], f["rule_ref"]) for f in body["findings"]] == [
        ("court_document_lookalike", "compliance_pe", "Ley 29571 art. 62.a")]
    r = await tenant.api.post(f"/v1/templates/{template_id}/compliance",
                              json={"country": "BR"})
    codes = {f["code"] for f in r.json()["findings"]}
    assert codes == {"creditor_identification_missing"}  # Spanish court words aren't BR's
    r = await tenant.api.post("/v1/templates", json={
        "code": "plain", "channel": "sms", "locale": "es-PE", "name": "p",
        "body": "Hola {{ debtor.first_name }}, su cuota vence mañana."})
    r = await tenant.api.post(f"/v1/templates/{r.json()['id']}/compliance", json={})
    assert r.json()["findings"] == []
