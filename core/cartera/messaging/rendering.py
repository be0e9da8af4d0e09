"""Rendering templates: sandboxed Jinja2 with money and dates formatted for the locale.

Variables: ``debtor`` (name, first_name, external_ref, national_id, zone, country),
``balance`` (the debtor's balance in the template's currency of interest: outstanding,
overdue, days_past_due, oldest_unpaid_due_date; ``balances`` has every currency),
``obligations`` (the ones concerned, or every open one), ``tenant`` (name), ``links``
(``payment``: the debtor's open payment link, see :mod:`cartera.payments.links`;
``self_service`` — empty until configured) and ``vars`` (what the caller passed). Money
renders as a localised string ("S/ 1,250.50"); so do dates.

Templates run in :class:`cartera.messaging.sandbox.BoundedEnvironment`: immutable sandbox,
bounded source, output and intermediate values, and a time budget per message. Every
failure is an :class:`~cartera.errors.Invalid` naming the template field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import money
from cartera.errors import Invalid
from cartera.messaging import sandbox
from cartera.portfolio import aging
from cartera.portfolio.models import Debtor, DebtorBalance, Obligation
from cartera.tenants.models import Tenant

PENDING_PAYMENT_LINK = "payment_link_pending"
"""The ``variables`` key of a queued message still waiting for its payment link (a
strategy step's ``payment_link``, see :mod:`cartera.strategies.paylinks`): it is not sent
until the link replaces it with ``payment_link``."""

P = ParamSpec("P")
R = TypeVar("R")


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


def _env(autoescape: bool) -> sandbox.BoundedEnvironment:
    return sandbox.BoundedEnvironment(autoescape=autoescape, undefined=StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True)


TEXT_ENV = _env(autoescape=False)
HTML_ENV = _env(autoescape=True)


def _check_size(source: str, param: str) -> None:
    limit = sandbox.LIMITS.max_source_chars
    if len(source) > limit:
        raise Invalid(f"the template is longer than {limit} characters",
                      code="template_too_large", param=param)


def check_syntax(source: str, param: str, *, html: bool = False) -> None:
    """Refuse (422 naming ``param``) a template that is too long or does not parse."""
    _check_size(source, param)
    try:
        (HTML_ENV if html else TEXT_ENV).parse(source)
    except TemplateSyntaxError as exc:
        raise Invalid(f"template syntax error on line {exc.lineno}: {exc.message}",
                      code="template_syntax_error", param=param) from None


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> Template:
    return (HTML_ENV if html else TEXT_ENV).from_string(source)


@contextmanager
def _template_errors(param: str) -> Iterator[None]:
    """Template failures as :class:`Invalid` naming ``param`` (a 422, or a per-message
    failure code at send time)."""
    try:
        yield
    except UndefinedError as exc:
        raise Invalid(f"template uses an unknown variable: {exc.message}",
                      code="template_variable_missing", param=param) from None
    except sandbox.RenderLimitExceeded as exc:
        raise Invalid(str(exc), code=exc.code, param=param) from None
    except SecurityError as exc:
        raise Invalid(f"template tried an unsafe operation: {exc}", code="template_unsafe",
                      param=param) from None
    except TemplateSyntaxError as exc:
        raise Invalid(f"template syntax error: {exc.message}", code="template_syntax_error",
                      param=param) from None
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError,
            RecursionError) as exc:
        raise Invalid(f"the template failed to render: {type(exc).__name__}: {exc}"[:500],
                      code="template_render_error", param=param) from None


def render(source: str, context: dict[str, Any], param: str, *, html: bool = False) -> str:
    """``source`` rendered with ``context`` inside the sandbox's limits (the current
    render budget, or a new one). The output is streamed and stops past the output limit.

    Synchronous and CPU-bound: async code calls it through :func:`in_worker_thread`."""
    _check_size(source, param)
    limit = sandbox.LIMITS.max_output_chars
    with sandbox.budget(), _template_errors(param):
        parts: list[str] = []
        size = 0
        for chunk in _compiled(source, html).generate(context):
            size += len(chunk)
            if size > limit:
                raise sandbox.RenderLimitExceeded(
                    "template_output_too_large",
                    f"the template renders more than {limit} characters")
            parts.append(chunk)
        return "".join(parts)  # autoescaped chunks are already escaped


def evaluate(expression: str, context: dict[str, Any], param: str) -> Any:
    """The value of one template expression (``balance.overdue``), within the limits."""
    _check_size(expression, param)
    with sandbox.budget(), _template_errors(param):
        return TEXT_ENV.compile_expression(expression)(context)


async def in_worker_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a render off the event loop (each render stops itself at its time budget)."""
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


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
    from cartera.payments.links import open_urls

    links = await open_urls(session, debtor.tenant_id, [debtor.id])
    return build_context(debtor, tenant, balances, obligations, locale, as_of,
                         obligation_ids, variables, payment_link=links.get(debtor.id))


def build_context(debtor: Debtor, tenant: Tenant, balance_rows: Sequence[DebtorBalance],
                  obligation_rows: Sequence[Obligation], locale: str, as_of: date,
                  obligation_ids: list[int], variables: dict[str, Any], *,
                  payment_link: str | None = None) -> dict[str, Any]:
    """The template variables from already-loaded rows. ``obligation_rows`` are the
    debtor's obligations in due-date order; without ``obligation_ids`` the open ones are
    used. ``links.payment`` is the caller's ``payment_link`` variable, else the debtor's
    open payment link (``payment_link``), else empty."""
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
        "links": {"payment": variables.get("payment_link") or payment_link or "",
                  "self_service": variables.get("self_service_link", "")},
        "vars": variables,
        "today": LocalDate(as_of, locale),
    }
