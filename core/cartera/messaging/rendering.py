"""Rendering templates: sandboxed Jinja2 with money and dates formatted for the locale.

Variables: ``debtor`` (name, first_name, external_ref, national_id, zone, country),
``balance`` (the debtor's balance in the template's currency of interest: outstanding,
overdue, days_past_due, oldest_unpaid_due_date; ``balances`` has every currency),
``obligations`` (the ones concerned, or every open one), ``tenant`` (name), ``links``
(payment, self_service — empty until those features are configured) and ``vars`` (what the
caller passed). Money renders as a localised string ("S/ 1,250.50"); so do dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import money
from cartera.errors import Invalid
from cartera.portfolio import aging
from cartera.portfolio.models import Debtor, DebtorBalance, Obligation
from cartera.tenants.models import Tenant


def babel_locale(locale: str) -> str:
    return locale.replace("-", "_")


@dataclass(frozen=True)
class LocalMoney:
    amount: Decimal
    currency: str
    locale: str

    def __str__(self) -> str:
        return format_currency(self.amount, self.currency, locale=babel_locale(self.locale))


@dataclass(frozen=True)
class LocalDate:
    value: date
    locale: str

    def __str__(self) -> str:
        return format_date(self.value, format="long", locale=babel_locale(self.locale))

    def isoformat(self) -> str:
        return self.value.isoformat()


def _env(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True)
    return env


TEXT_ENV = _env(autoescape=False)
HTML_ENV = _env(autoescape=True)


def check_syntax(source: str, param: str, *, html: bool = False) -> None:
    try:
        (HTML_ENV if html else TEXT_ENV).parse(source)
    except TemplateSyntaxError as exc:
        raise Invalid(f"template syntax error on line {exc.lineno}: {exc.message}",
                      code="template_syntax_error", param=param) from None


def render(source: str, context: dict[str, Any], param: str, *, html: bool = False) -> str:
    try:
        return (HTML_ENV if html else TEXT_ENV).from_string(source).render(context)
    except UndefinedError as exc:
        raise Invalid(f"template uses an unknown variable: {exc.message}",
                      code="template_variable_missing", param=param) from None
    except SecurityError as exc:
        raise Invalid(f"template tried an unsafe operation: {exc}", code="template_unsafe",
                      param=param) from None
    except TemplateSyntaxError as exc:
        raise Invalid(f"template syntax error: {exc.message}", code="template_syntax_error",
                      param=param) from None


def _money(minor: int, currency: str, locale: str) -> LocalMoney:
    return LocalMoney(Decimal(money.from_minor(minor, currency)), currency, locale)


async def debtor_context(session: AsyncSession, debtor: Debtor, locale: str, as_of: date,
                         obligation_ids: list[int], variables: dict[str, Any]) -> dict[str, Any]:
    """The variables a template sees for one debtor (loads what :func:`build_context`
    needs; the batch sender loads it for many debtors at once instead)."""
    tenant = await session.get(Tenant, debtor.tenant_id)
    assert tenant is not None
    balances = (await session.scalars(select(DebtorBalance).where(
        DebtorBalance.debtor_id == debtor.id))).all()
    stmt = select(Obligation).where(Obligation.debtor_id == debtor.id)
    if obligation_ids:
        stmt = stmt.where(Obligation.id.in_(obligation_ids))
    obligations = (await session.scalars(stmt.order_by(Obligation.due_date,
                                                       Obligation.id))).all()
    return build_context(debtor, tenant, balances, obligations, locale, as_of,
                         obligation_ids, variables)


def build_context(debtor: Debtor, tenant: Tenant, balance_rows: Sequence[DebtorBalance],
                  obligation_rows: Sequence[Obligation], locale: str, as_of: date,
                  obligation_ids: list[int], variables: dict[str, Any]) -> dict[str, Any]:
    """The template variables from already-loaded rows. ``obligation_rows`` are the
    debtor's obligations in due-date order; without ``obligation_ids`` the open ones are
    used."""
    balances = {}
    for b in balance_rows:
        balances[b.currency] = {
            "currency": b.currency,
            "outstanding": _money(b.outstanding_minor, b.currency, locale),
            "overdue": _money(b.overdue_minor, b.currency, locale),
            "days_past_due": aging.days_past_due(b.oldest_unpaid_due_date, as_of),
            "oldest_unpaid_due_date": LocalDate(b.oldest_unpaid_due_date, locale)
            if b.oldest_unpaid_due_date else None,
        }
    chosen = set(obligation_ids)
    obligations = [{
        "external_ref": o.external_ref, "kind": o.kind, "product": o.product,
        "currency": o.currency, "amount": _money(o.original_minor, o.currency, locale),
        "outstanding": _money(o.outstanding_minor, o.currency, locale),
        "due_date": LocalDate(o.due_date, locale),
        "days_past_due": aging.days_past_due(o.due_date, as_of) if o.status == "open" else 0,
    } for o in obligation_rows
        if (o.id in chosen if chosen else o.status == "open" and o.kind != "credit_note")]
    primary = str(obligations[0]["currency"]) if obligations else tenant.default_currency
    return {
        "debtor": {"name": debtor.name, "first_name": debtor.name.split()[0],
                   "external_ref": debtor.external_ref, "national_id": debtor.national_id,
                   "zone": debtor.zone, "country": debtor.country},
        "balance": balances.get(primary) or {"currency": primary,
                                              "outstanding": _money(0, primary, locale),
                                              "overdue": _money(0, primary, locale),
                                              "days_past_due": 0,
                                              "oldest_unpaid_due_date": None},
        "balances": balances,
        "obligations": obligations,
        "tenant": {"name": tenant.name},
        "links": {"payment": variables.get("payment_link", ""),
                  "self_service": variables.get("self_service_link", "")},
        "vars": variables,
        "today": LocalDate(as_of, locale),
    }
