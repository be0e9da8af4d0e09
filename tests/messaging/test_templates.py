"""Templates: channel rules on save, locale formatting, preview for a debtor."""

from __future__ import annotations

from typing import Any

from cartera.messaging.sms import analyse, plain_spaces
from tests.conftest import TenantClient
from tests.payments.test_allocation import days_ago, obligation

SMS = {"code": "reminder", "channel": "sms", "locale": "es-PE", "name": "Recordatorio",
       "body": "Hola {{ debtor.first_name }}, tu deuda de {{ balance.overdue }} "
               "vencio el {{ obligations[0].due_date }}."}


async def debtor_with_debt(t: TenantClient) -> int:
    r = await t.api.post("/v1/debtors", json={
        "external_ref": "D-T", "name": "Rosa Quispe", "country": "PE",
        "contact_points": [{"kind": "phone", "value": "987654321", "consent": "granted"}]})
    d = int(r.json()["id"])
    await obligation(t, d, "F-T", "1250.50", days_ago(10))
    return d


def test_gsm7_and_ucs2_segments() -> None:
    assert (analyse("a" * 160).encoding, analyse("a" * 160).segments) == ("GSM-7", 1)
    assert analyse("a" * 161).segments == 2
    assert analyse("€" * 80).units == 160  # extension characters take two septets
    accented = analyse("Hola, ¿cómo estás?")  # ó and á are not in GSM-7
    assert accented.encoding == "UCS-2" and accented.non_gsm_characters == ["á", "ó"]
    assert analyse("x" * 71 + "ó").segments == 2


async def test_sms_template_reports_segments(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/templates", json=SMS)
    assert r.status_code == 201, r.text
    assert r.json()["sms"]["encoding"] == "GSM-7"
    assert r.json()["sms"]["segments"] == 1


async def test_channel_rules_are_checked_on_save(tenant: TenantClient) -> None:
    async def bad(**over: Any) -> dict[str, Any]:
        r = await tenant.api.post("/v1/templates", json={**SMS, **over})
        assert r.status_code == 422, r.text
        return dict(r.json())

    assert (await bad(body="{{ oops"))["param"] == "body"
    assert (await bad(channel="email", html="<p>x</p>"))["param"] == "subject"
    assert (await bad(channel="email", subject="Aviso"))["param"] == "html"
    assert (await bad(channel="whatsapp"))["code"] == "missing_whatsapp_template"
    wa = {"name": "recordatorio_pago", "language": "es_PE",
          "parameters": [{"type": "text", "value": "{{ debtor.first_name"}]}
    assert (await bad(channel="whatsapp", whatsapp=wa))["param"] == "whatsapp.parameters[0].value"


async def test_preview_formats_money_and_dates_for_the_locale(tenant: TenantClient) -> None:
    d = await debtor_with_debt(tenant)
    t = (await tenant.api.post("/v1/templates", json=SMS)).json()
    r = await tenant.api.post(f"/v1/templates/{t['id']}/preview", json={"debtor_id": d})
    assert r.status_code == 200, r.text
    text = r.json()["content"]["text"]
    assert text.startswith("Hola Rosa, tu deuda de S/")
    assert "1,250.50" in text
    assert "de 20" in text  # "13 de noviembre de 2026": a long Spanish date
    assert r.json()["sms"]["segments"] >= 1


async def test_whatsapp_parameters_are_typed(tenant: TenantClient) -> None:
    d = await debtor_with_debt(tenant)
    wa = {"name": "recordatorio_pago", "language": "es_PE", "parameters": [
        {"type": "text", "value": "{{ debtor.first_name }}"},
        {"type": "currency", "value": "{{ balance.overdue }}"},
        {"type": "date_time", "value": "{{ obligations[0].due_date }}"}]}
    t = (await tenant.api.post("/v1/templates", json={
        **SMS, "channel": "whatsapp", "code": "wa", "whatsapp": wa})).json()
    content = (await tenant.api.post(f"/v1/templates/{t['id']}/preview",
                                     json={"debtor_id": d})).json()["content"]
    params = content["body_parameters"]
    assert params[0] == {"type": "text", "text": "Rosa", "name": None}
    assert params[1]["type"] == "currency"
    assert params[1]["amount"] == {"amount": "1250.50", "currency": "PEN"}
    assert params[2]["type"] == "date_time"


async def test_unknown_variable_is_a_clear_error(tenant: TenantClient) -> None:
    d = await debtor_with_debt(tenant)
    t = (await tenant.api.post("/v1/templates", json={
        **SMS, "code": "x", "body": "{{ debtor.nickname }}"})).json()
    r = await tenant.api.post(f"/v1/templates/{t['id']}/preview", json={"debtor_id": d})
    assert r.status_code == 422 and r.json()["code"] == "template_variable_missing"


async def test_sandbox_blocks_unsafe_templates(tenant: TenantClient) -> None:
    d = await debtor_with_debt(tenant)
    t = (await tenant.api.post("/v1/templates", json={
        **SMS, "code": "evil", "body": "{{ debtor.__class__.__mro__ }}"})).json()
    r = await tenant.api.post(f"/v1/templates/{t['id']}/preview", json={"debtor_id": d})
    assert r.status_code == 422


async def test_amounts_in_a_gsm7_sms_use_ascii_spaces(tenant: TenantClient) -> None:
    d = await debtor_with_debt(tenant)
    greeting = "Hola {{ debtor.first_name }}, debe {{ balance.overdue }}. "
    rendered_greeting = "Hola Rosa, debe S/ 1,250.50. "
    body = greeting + "x" * (158 - len(rendered_greeting))
    t = (await tenant.api.post("/v1/templates", json={**SMS, "code": "gsm",
                                                      "body": body})).json()
    r = await tenant.api.post(f"/v1/templates/{t['id']}/preview", json={"debtor_id": d})
    text = r.json()["content"]["text"]
    assert len(text) == 158 and text.startswith("Hola Rosa, debe S/ 1,250.50.")
    assert r.json()["sms"] == {"encoding": "GSM-7", "characters": 158, "units": 158,
                               "segments": 1, "non_gsm_characters": []}


def test_plain_spaces_only_where_they_make_gsm7() -> None:
    assert plain_spaces("S/\u00a01,250.50") == "S/ 1,250.50"
    assert plain_spaces("R$\u202f10") == "R$ 10"
    ucs2 = "¿Cómo está? S/\u00a01,250.50"  # UCS-2 anyway: left as rendered
    assert plain_spaces(ucs2) == ucs2
