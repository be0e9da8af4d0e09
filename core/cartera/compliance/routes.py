"""HTTP routes: /v1/compliance (packs, check, settings, report)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

import msgspec
from litestar import Controller, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor
from cartera.api.security import secured
from cartera.audit import service as audit
from cartera.compliance import checks, schemas
from cartera.compliance.models import ComplianceSettings
from cartera.compliance.service import settings_row
from cartera.errors import Invalid
from cartera.plugins.registry import current_host

READ = secured("compliance:read")
WRITE = secured("compliance:write")
MAX_REPORT_PERIOD = timedelta(days=400)


def _settings_out(row: ComplianceSettings | None) -> schemas.SettingsOut:
    if row is None:
        return schemas.SettingsOut(unknown_country="allow", creditor_name=None,
                                   creditor_tax_id=None, creditor_address=None,
                                   agency_name=None)
    return schemas.SettingsOut(
        unknown_country=row.unknown_country,  # type: ignore[arg-type]
        creditor_name=row.creditor_name, creditor_tax_id=row.creditor_tax_id,
        creditor_address=row.creditor_address, agency_name=row.agency_name)


class ComplianceController(Controller):
    path = "/v1/compliance"
    tags = ["Compliance"]

    @get("/packs", summary="List compliance packs", operation_id="ListCompliancePacks", **READ)
    async def list_packs(self) -> schemas.PackList:
        """Installed country packs: versions (pack and holiday calendar), the IANA zones they
        accept, their tenant config schema (a tenant may make a pack stricter, never looser)
        and every rule with its reason code, legal reference and how sure the reading is
        (``verified``, ``secondary``, ``unverified``)."""
        return checks.packs(current_host())

    @post("/check", summary="Check a contact", operation_id="CheckContact", status_code=200,
          **READ)
    async def check(self, data: schemas.CheckIn, session: AsyncSession,
                    actor: Actor) -> schemas.CheckOut:
        """Judge a hypothetical contact with the gate's own rules and the tenant's pack
        configs: a debtor (its contact points, consent, history and facts) or explicit
        fields, a channel, an aware instant (default now) and optionally the content.
        Returns the verdict (allow, defer with the earliest lawful instant, deny) with every
        reason and legal reference. Nothing is written."""
        return await checks.check(session, current_host(), actor.tenant_id, data)

    @get("/settings", summary="Get compliance settings",
         operation_id="GetComplianceSettings", **READ)
    async def get_settings(self, session: AsyncSession, actor: Actor) -> schemas.SettingsOut:
        """The policy for countries with no pack (``allow`` with a visible reason, the
        default, or ``deny``) and the creditor identity content is checked against."""
        return _settings_out(await settings_row(session, actor.tenant_id))

    @patch("/settings", summary="Change compliance settings",
           operation_id="UpdateComplianceSettings", **WRITE)
    async def update_settings(self, data: schemas.SettingsUpdate, session: AsyncSession,
                              actor: Actor) -> schemas.SettingsOut:
        """Change the fields given; the others keep their values."""
        row = await settings_row(session, actor.tenant_id)
        if row is None:
            row = ComplianceSettings(tenant_id=actor.tenant_id, unknown_country="allow")
            session.add(row)
        changed = {f: getattr(data, f) for f in data.__struct_fields__
                   if getattr(data, f) is not msgspec.UNSET}
        for name, value in changed.items():
            setattr(row, name, value)
        await session.flush()
        audit.record(session, actor, "compliance.settings_updated", "tenant", actor.tenant_id,
                     {"fields": sorted(changed)})
        return _settings_out(row)

    @get("/report", summary="Compliance report", operation_id="GetComplianceReport", **READ)
    async def get_report(self, session: AsyncSession, period_start: datetime | None = None,
                         period_end: datetime | None = None) -> schemas.ReportOut:
        """Per pack and rule: outbound contacts allowed, deferred and denied, created in
        ``[period_start, period_end)`` (default the last 30 days), counted on each
        contact's last recorded verdict, with the median deferral in seconds."""
        for name, value in (("period_start", period_start), ("period_end", period_end)):
            if value is not None and value.tzinfo is None:
                raise Invalid(f"{name} must carry a UTC offset", code="naive_instant",
                              param=name)
        end = period_end or clock.now()
        try:
            start = period_start or end - timedelta(days=30)
        except OverflowError:
            raise Invalid("period_end is too early for the default 30-day period",
                          code="invalid_period", param="period_end") from None
        if not start < end or end - start > MAX_REPORT_PERIOD:
            raise Invalid("the period must be positive and at most 400 days",
                          code="invalid_period", param="period_start")
        return await checks.report(session, start, end)


@get("/v1/debtors/{debtor_id:int}/charges-check", summary="Check fees and reports",
     operation_id="CheckDebtorCharges", tags=["Compliance"], **READ)
async def charges_check(
    debtor_id: int, session: AsyncSession,
    creditor_kind: Literal["supervised_lender", "other"] = "supervised_lender",
    uf_value: Decimal | None = None,
    notices: list[date] | None = None, written_notice: bool = False,
    small_debt: bool = False) -> schemas.ChargesCheckOut:
    """Which collection fees, penalties, moratory interest and credit-bureau reports the
    creditor may add or make today for this debtor, per installed pack of its country: each
    finding says allowed or not, the cap when the law sets one (CL: 9/6/3 % by UF band,
    with ``uf_value`` pesos per UF), the date from which it becomes lawful (CL fees after
    day 20, CO reports 20 days after the last of ``notices``, BR after a written notice)
    and the article. ``prescription`` says, per pack, from which day judicial collection
    is time-barred, or that the pack knows no period (never a guessed date). Nothing is
    written."""
    if uf_value is not None and not (uf_value.is_finite() and uf_value > 0):
        raise Invalid("uf_value must be a positive number of pesos", code="invalid_uf_value",
                      param="uf_value")
    params = checks.ChargeParams(creditor_kind=creditor_kind, uf_value=uf_value,
                                 notices=notices or [], written_notice=written_notice,
                                 small_debt=small_debt)
    return await checks.charges(session, current_host(), debtor_id, params)


@post("/v1/templates/{template_id:int}/compliance", summary="Check a template's content",
      operation_id="CheckTemplateCompliance", tags=["Compliance"], status_code=200, **READ)
async def template_compliance(template_id: int, data: schemas.TemplateCheckIn,
                              session: AsyncSession, actor: Actor) -> schemas.TemplateCheckOut:
    """What the country's packs (default: the tenant's country) find in the template's text:
    court-document lookalikes, threats, missing creditor identification (BR CDC 42-A),
    missing first-contact disclosures (MX, with ``first_contact``), a missing creditor on
    an agency's notice, asking why the debtor did not pay (CO). Only content rules; nothing
    is written."""
    return await checks.template_findings(session, current_host(), actor.tenant_id,
                                          template_id, data)


ROUTES = [ComplianceController, charges_check, template_compliance]
