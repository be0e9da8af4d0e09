"""Hostile input is a precise 4xx naming the field, never a 500, on both databases: unknown
and over-repeated query parameters, dates near year 1 or 9999, NUL characters, naive
instants, strings longer than their columns and rule sets of thousands of comparisons."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from msgspec import inspect as mi
from sqlalchemy import String, Text

from cartera.api.openapi import document, request_structs
from cartera.api.parameters import MAX_REPEATED, query_spec
from cartera.auth.scopes import SCOPES
from cartera.db.base import Base
from cartera.segmentation.rules import MAX_RULE_NODES
from tests.api.test_bad_input import DEBTOR, OBLIGATION, assert_problem
from tests.conftest import TenantClient

METHODS = ("get", "post", "put", "patch", "delete")
# The public webhook route takes whatever query the provider sends.
FREE_QUERY = ("/v1/hooks/",)


def _operations(app: Litestar) -> list[tuple[str, str]]:
    return [(method, path) for path, item in document(app)["paths"].items()
            for method in item if method in METHODS and not path.startswith(FREE_QUERY)]


def _filled(path: str) -> str:
    return re.sub(r"{\w+}", "1", path)


# --- query parameters ---------------------------------------------------------------------

async def test_an_unknown_parameter_is_400_not_ignored(tenant: TenantClient) -> None:
    r = await tenant.api.get("/v1/payments", params={"debtorid": 5})
    assert_problem(r, 400, "unknown_parameter", "debtorid")


async def test_every_operation_refuses_unknown_parameters(app: Litestar,
                                                          make_tenant: Any) -> None:
    tenant = await make_tenant(scopes=list(SCOPES))  # platform:admin too (/v1/tenants)
    for method, path in _operations(app):
        r = await tenant.api.request(method.upper(), _filled(path), params={"zz_typo": "1"})
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["code"] == "unknown_parameter" and r.json()["param"] == "zz_typo"


def test_the_check_knows_exactly_the_documented_parameters(app: Litestar) -> None:
    doc = document(app)["paths"]
    checked = 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or "OPTIONS" in handler.http_methods:
                continue
            path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
            for method in handler.http_methods:
                op = doc.get(path, {}).get(method.lower())
                if op is None:
                    continue  # not in the document (the docs themselves)
                documented = {p["name"] for p in op.get("parameters", [])
                              if p.get("in") == "query"}
                assert query_spec(handler).names == documented, (method, path)
                checked += 1
    assert checked > 50


async def test_repeated_filters_are_capped(tenant: TenantClient) -> None:
    many = [("tag", f"t{i}") for i in range(500)]
    r = await tenant.api.get("/v1/debtors", params=many)
    assert_problem(r, 422, "too_many_values", "tag")
    r = await tenant.api.get("/v1/debtors", params=many[:MAX_REPEATED])
    assert r.status_code == 200, r.text


def test_list_parameters_document_the_cap(app: Litestar) -> None:
    tag = next(p for p in document(app)["paths"]["/v1/debtors"]["get"]["parameters"]
               if p["name"] == "tag")
    array = next(v for v in tag["schema"]["oneOf"] if v.get("type") == "array")
    assert array["maxItems"] == MAX_REPEATED


# --- dates near year 1 or 9999 ------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/v1/debtors?as_of={}", "/v1/debtors?dpd_min=5&as_of={}", "/v1/aging?as_of={}",
    "/v1/obligations?due_from={}", "/v1/payments?paid_to={}", "/v1/debtors/1/balance?as_of={}",
    "/v1/segments/explain/1?as_of={}", "/v1/stages/debtors/1?as_of={}",
    "/v1/segments/brackets?feature=outstanding_amount&currency=PEN&as_of={}",
])
@pytest.mark.parametrize("day", ["0001-01-01", "0001-01-02", "9999-12-31", "1899-12-31"])
async def test_query_dates_out_of_range_are_422(tenant: TenantClient, path: str,
                                                day: str) -> None:
    r = await tenant.api.get(path.format(day))
    param = path.format(day).rsplit("&", 1)[-1].rsplit("?", 1)[-1].split("=")[0]
    assert_problem(r, 422, "date_out_of_range", param)


async def test_body_dates_out_of_range_are_422(tenant: TenantClient) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    r = await tenant.api.post("/v1/obligations", json={**OBLIGATION, "due_date": "0001-01-01"})
    assert_problem(r, 422, "date_out_of_range", "due_date")
    r = await tenant.api.post("/v1/segments/runs", json={"as_of": "9999-12-31"})
    assert_problem(r, 422, "date_out_of_range", "as_of")
    r = await tenant.api.post("/v1/arrangements", json={
        "debtor_id": debtor["id"], "currency": "PEN",
        "installments": [{"due_date": "2999-12-01", "amount": "1.00"},
                         {"due_date": "9999-12-31", "amount": "1.00"}]})
    assert_problem(r, 422, "date_out_of_range", "installments[1].due_date")
    assert (await tenant.api.get("/v1/obligations")).json()["data"] == []


async def test_dates_inside_the_range_still_work(tenant: TenantClient) -> None:
    assert (await tenant.api.post("/v1/debtors", json=DEBTOR)).status_code == 201
    r = await tenant.api.post("/v1/obligations", json={**OBLIGATION, "due_date": "1900-01-01"})
    assert r.status_code == 201, r.text
    for day in ("1900-01-01", "2999-12-31"):
        r = await tenant.api.get("/v1/debtors", params={"as_of": day, "dpd_min": 1})
        assert r.status_code == 200, r.text
        assert (await tenant.api.get("/v1/aging", params={"as_of": day})).status_code == 200


# --- NUL characters -----------------------------------------------------------------------

@pytest.mark.parametrize(("change", "param"), [
    ({"name": "Ana\u0000"}, "name"),
    ({"attributes": {"note": "a\u0000b"}}, "attributes.note"),
    ({"attributes": {"k\u0000": "v"}}, "attributes.k\u0000"),
    ({"contact_points": [{"kind": "email", "value": "a@b.pe"},
                         {"kind": "phone", "value": "9\u000087"}]}, "contact_points[1].value"),
])
async def test_nul_in_a_body_is_422_naming_the_field(tenant: TenantClient,
                                                      change: dict[str, Any],
                                                      param: str) -> None:
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, **change})
    assert_problem(r, 422, "nul_character", param)
    assert (await tenant.api.get("/v1/debtors")).json()["data"] == []


async def test_nul_in_reasons_notes_and_filters_is_422(tenant: TenantClient) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    r = await tenant.api.post("/v1/interactions", json={
        "debtor_id": debtor["id"], "channel": "voice", "outcome": "completed",
        "note": "called\u0000"})
    assert_problem(r, 422, "nul_character", "note")
    r = await tenant.api.post(f"/v1/stages/debtors/{debtor['id']}",
                              json={"stage_code": "x", "reason": "because\u0000"})
    assert_problem(r, 422, "nul_character", "reason")
    r = await tenant.api.get("/v1/debtors", params={"zone": "Lima\u0000"})
    assert_problem(r, 422, "nul_character", "zone")


# --- instants and string lengths ----------------------------------------------------------

async def test_a_naive_instant_in_a_body_is_422(tenant: TenantClient) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    body = {"debtor_id": debtor["id"], "channel": "voice", "outcome": "completed"}
    r = await tenant.api.post("/v1/interactions",
                              json={**body, "occurred_at": "2024-05-01T10:00:00"})
    assert_problem(r, 422, "validation_error", "occurred_at")
    r = await tenant.api.post("/v1/interactions",
                              json={**body, "occurred_at": "2024-05-01T10:00:00-05:00"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/integrations", {"name": "n" * 201, "provider_kind": "channel",
                          "provider_name": "fixture_sms"}, "name"),
    ("/v1/integrations", {"name": "n", "provider_kind": "channel",
                          "provider_name": "p" * 101}, "provider_name"),
    ("/v1/templates", {"code": "c", "channel": "sms", "locale": "es", "name": "n" * 201,
                       "body": "hola"}, "name"),
    ("/v1/segments", {"segments": [{"code": "all", "name": "All", "rule": {"all": []},
                                    "description": "d" * 2001}]},
     "segments[0].description"),
])
async def test_strings_longer_than_their_column_are_422(tenant: TenantClient, path: str,
                                                        body: dict[str, Any],
                                                        param: str) -> None:
    method = "PUT" if path == "/v1/segments" else "POST"
    r = await tenant.api.request(method, path, json=body)
    assert_problem(r, 422, "validation_error", param)


def _body_structs(app: Litestar) -> dict[type[msgspec.Struct], mi.StructType]:
    # The OAuth endpoints take forms (RFC 6749, 7009, 7662), not JSON bodies.
    return {cls: info for cls, info in request_structs(app).items()
            if cls.__name__ not in {"TokenRequest", "SubmittedToken"}}


def _scalars(t: mi.Type) -> list[mi.Type]:
    members = t.types if isinstance(t, mi.UnionType) else (t,)
    return [m.type if isinstance(m, mi.Metadata) else m for m in members]


# Which table stores each body (fields match columns by name, or as aliased here).
TABLES: dict[str, tuple[str, ...]] = {
    "PortfolioCreate": ("Portfolio",), "PortfolioUpdate": ("Portfolio",),
    "ContactPointIn": ("ContactPoint",), "ContactPointUpdate": ("ContactPoint",),
    "RelatedPartyIn": ("RelatedParty",), "DebtorCreate": ("Debtor",),
    "DebtorUpdate": ("Debtor",), "ObligationCreate": ("Obligation",),
    "ObligationUpdate": ("Obligation",), "PaymentCreate": ("Payment",),
    "AllocationIn": ("Allocation",), "PaymentReverse": ("Payment",),
    "IntegrationCreate": ("Integration",), "IntegrationUpdate": ("Integration",),
    "SegmentIn": ("Segment",), "RunCreate": ("SegmentRun",), "StageIn": ("Stage",),
    "StageSet": ("Placement", "PlacementMove"), "TemplateCreate": ("MessageTemplate",),
    "TemplateUpdate": ("MessageTemplate",), "MessageCreate": ("Interaction",),
    "InteractionRecord": ("Interaction",), "KeywordIn": ("OptOutKeyword",),
    "PromiseCreate": ("Promise",), "ArrangementCreate": ("Arrangement",),
    "InstallmentIn": ("Installment",), "Cancel": ("Promise", "Arrangement"),
    "SettingsUpdate": ("ComplianceSettings",),
    "ClientCreate": ("OAuthClient",), "TenantCreate": ("Tenant",),
    "StrategyCreate": ("Strategy",), "StrategyUpdate": ("Strategy",),
    "Activate": ("StrategyVersion",), "EnrollmentChange": ("Enrollment",),
    "PlannerSettingsIn": ("PlannerSettings",),
    "OfferCreate": ("Offer",), "OfferPolicyIn": ("OfferPolicy",),
    "SelfServiceLinkCreate": ("SelfServiceLink",), "PromiseAsk": ("Promise",),
    "PaymentLinkAsk": ("PaymentLink",),
    "EndpointCreate": ("WebhookEndpoint",), "EndpointUpdate": ("WebhookEndpoint",),
    "RotateSecret": ("WebhookEndpoint",), "RedeliverIn": ("EventDelivery",),
    "SyncSettingsIn": ("ErpSyncSettings",), "SyncRequest": ("ErpSyncRun",),
    "PaymentLinkCreate": ("PaymentLink",), "PaymentLinkCancel": ("PaymentLink",),
    "ReconciliationResolve": ("ReconciliationException",), "TaskClose": ("Task",),
}
NOT_STORED = {"CheckIn", "ContentIn", "ExplicitContact", "PriorContactIn", "TemplateCheckIn",
              "PaymentRefund"}
"""Bodies that are judged and answered, never written (``POST /v1/compliance/check``), or
passed on to a provider and kept only in the audit trail (a refund's reason)."""
ALIASES = {("PaymentReverse", "reason"): "reversal_reason",
           ("PaymentLinkCancel", "reason"): "status_reason",
           ("Cancel", "reason"): "cancel_reason", ("StageSet", "stage_code"): "code"}
# ``StageSet.reason`` lands in ``placements.stage_reason`` and ``placement_moves.reason``.
EXTRA_COLUMNS = {("StageSet", "reason"): (("Placement", "stage_reason"),),
                 ("StageSet", "stage_code"): (("Stage", "code"),)}


def _columns(struct: str, field: str) -> list[Any]:
    mappers = {m.class_.__name__: m.class_ for m in Base.registry.mappers}
    name = ALIASES.get((struct, field), field)
    found = [mappers[t].__table__.c[name] for t in TABLES.get(struct, ())
             if name in mappers[t].__table__.c]
    found += [mappers[t].__table__.c[c] for t, c in EXTRA_COLUMNS.get((struct, field), ())]
    return found


def _bounded_by_pattern(pattern: str | None) -> bool:
    """An anchored pattern with only finite repetition bounds the length too."""
    return bool(pattern and pattern.startswith("^") and pattern.endswith("$")
                and not re.search(r"[+*]|,}", pattern))


def test_every_body_string_fits_its_column(app: Litestar) -> None:
    """Each string field of a request body is bounded, and by no more than the String(n)
    column that stores it (Text columns and JSON documents have no column bound)."""
    problems = []
    for cls, info in _body_structs(app).items():
        for f in info.fields:
            for t in _scalars(f.type):
                if not isinstance(t, mi.StrType):
                    continue
                columns = _columns(cls.__name__, f.name)
                if any(isinstance(c.type, Text) for c in columns):
                    continue  # unbounded column: the body size bounds it
                limits = [c.type.length for c in columns if isinstance(c.type, String)]
                if t.max_length is None and not _bounded_by_pattern(t.pattern):
                    problems.append(f"{cls.__name__}.{f.name} is unbounded")
                elif limits and (t.max_length or 0) > min(limits):
                    problems.append(f"{cls.__name__}.{f.name}: {t.max_length} > {min(limits)}")
    assert not problems, problems


def test_every_body_instant_needs_its_offset(app: Litestar) -> None:
    naive = [f"{cls.__name__}.{f.name}" for cls, info in _body_structs(app).items()
             for f in info.fields for t in _scalars(f.type)
             if isinstance(t, mi.DateTimeType) and t.tz is not True]
    assert not naive


def test_every_body_struct_is_mapped_or_stored_as_json(app: Litestar) -> None:
    json_documents = {"RuleSetIn", "StagesIn", "WhatsAppTemplateSpec", "WhatsAppParameter",
                      "PreviewRequest", "VersionIn", "StepIn", "ChannelIn", "WindowIn",
                      "TaskIn", "SimulateIn", "PriceIn", "PaymentLinkStepIn",
                      # offers: installments and policy rules are JSON columns; a
                      # self-service opt-out lands in contact points' JSON channel list
                      "OfferInstallmentIn", "PolicyRule", "OptOutAsk"}
    unmapped = ({cls.__name__ for cls in _body_structs(app)} - set(TABLES) - json_documents
                - NOT_STORED)
    assert not unmapped


# --- rule sets ----------------------------------------------------------------------------

def _rule_set(comparisons: int) -> dict[str, Any]:
    rule = {"any": [{"feature": "days_past_due", "op": "gte", "value": i}
                    for i in range(comparisons)]}
    return {"segments": [{"code": "big", "name": "Big", "rule": rule},
                         {"code": "all", "name": "All", "rule": {"all": []}}]}


async def test_a_rule_set_of_thousands_of_comparisons_is_422(tenant: TenantClient) -> None:
    big = _rule_set(MAX_RULE_NODES - 1)  # the group and the comparisons: then the catch-all
    for method, path in (("PUT", "/v1/segments"), ("POST", "/v1/segments/preview")):
        r = await tenant.api.request(method, path, json=big)
        assert_problem(r, 422, "rule_set_too_large", "segments[1].rule")
    huge = _rule_set(10_000)
    r = await tenant.api.put("/v1/segments", json=huge)
    assert_problem(r, 422, "rule_set_too_large", "segments[0].rule")
    assert (await tenant.api.get("/v1/segments")).json()["segments"] == []


async def test_a_rule_set_at_the_limit_is_evaluated(tenant: TenantClient) -> None:
    assert (await tenant.api.post("/v1/debtors", json=DEBTOR)).status_code == 201
    at_limit = _rule_set(MAX_RULE_NODES - 2)
    r = await tenant.api.post("/v1/segments/preview", json=at_limit)
    assert r.status_code == 200, r.text
    r = await tenant.api.put("/v1/segments", json=at_limit)
    assert r.status_code == 200, r.text
