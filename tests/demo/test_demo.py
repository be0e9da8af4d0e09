"""The demo portfolio: realistic, deterministic, every currency and aging bucket, idempotent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

import phonenumbers
from litestar import Litestar
from sqlalchemy import func, select

from cartera.clock import today_in
from cartera.demo.generator import generate, load_demo_portfolio
from cartera.portfolio.aging import BUCKET_NAMES
from cartera.portfolio.models import ContactPoint, Debtor, Obligation
from cartera.portfolio.validation import phone as normalise_phone
from tests.conftest import TenantClient

DEBTORS = 200
SEED = 7


async def _load(app: Litestar, tenant_id: int, today: date) -> tuple[bool, int, int]:
    async with app.state.ctx.sessionmaker() as session:
        summary = await load_demo_portfolio(session, tenant_id, DEBTORS, SEED, today)
        await session.commit()
        debtors = await session.scalar(
            select(func.count()).select_from(Debtor).where(Debtor.tenant_id == tenant_id))
        obligations = await session.scalar(
            select(func.count()).select_from(Obligation)
            .where(Obligation.tenant_id == tenant_id))
    return summary.loaded, int(debtors or 0), int(obligations or 0)


async def test_demo_portfolio_is_valid_complete_and_idempotent(
    app: Litestar, make_tenant: Callable[..., Awaitable[TenantClient]],
) -> None:
    tenant = await make_tenant()
    today = today_in("America/Lima")
    loaded, debtors, obligations = await _load(app, tenant.tenant_id, today)
    assert loaded and debtors == DEBTORS and obligations > DEBTORS

    async with app.state.ctx.sessionmaker() as session:
        phones = (await session.execute(
            select(ContactPoint.value, Debtor.country)
            .join(Debtor, Debtor.id == ContactPoint.debtor_id)
            .where(ContactPoint.tenant_id == tenant.tenant_id,
                   ContactPoint.kind.in_(("phone", "whatsapp"))))).all()
    assert len(phones) >= DEBTORS
    for value, country in phones:
        number = phonenumbers.parse(value)
        assert phonenumbers.is_valid_number(number), value
        assert phonenumbers.region_code_for_number(number) == country, value
        assert normalise_phone(value, country) == value  # already E.164

    aging = await tenant.api.get("/v1/aging", params={"as_of": today.isoformat()})
    assert aging.status_code == 200, aging.text
    currencies = {c["currency"]: c for c in aging.json()["currencies"]}
    assert set(currencies) == {"PEN", "MXN", "COP", "CLP", "USD"}
    populated = {b["bucket"] for c in currencies.values() for b in c["buckets"]
                 if b["obligations"] > 0}
    assert populated == set(BUCKET_NAMES)
    for code in ("PEN", "MXN", "COP", "CLP"):
        buckets = {b["bucket"]: b for b in currencies[code]["buckets"]}
        assert buckets["current"]["obligations"] > 0 and buckets["181_plus"]["obligations"] > 0
    assert "." not in currencies["CLP"]["total_amount"]  # CLP has no decimals

    # debtors filtered by days past due find the delinquent ones
    late = await tenant.api.get("/v1/debtors", params={"dpd_min": 91, "limit": 5,
                                                       "as_of": today.isoformat()})
    assert late.status_code == 200 and late.json()["data"], late.text

    again = await _load(app, tenant.tenant_id, today)
    assert again == (False, debtors, obligations)


def test_generation_is_deterministic_and_ids_have_their_country_shape() -> None:
    today = date(2025, 3, 14)
    first = generate(1, 300, 11, today)
    assert first == generate(1, 300, 11, today)
    assert first != generate(1, 300, 12, today)
    kinds = {o["kind"] for o in first.obligations}
    assert kinds == {"invoice", "installment", "loan", "credit_card_balance", "fee",
                     "credit_note", "debit_note"}
    statuses = {o["status"] for o in first.obligations}
    assert {"open", "disputed", "written_off"} <= statuses
    for d in first.debtors:
        nid = d["national_id"]
        if d["country"] == "PE":
            assert nid.isdigit() and len(nid) == (8 if d["kind"] == "person" else 11)
        elif d["country"] == "MX" and d["kind"] == "person":
            assert len(nid) == 18 and len(d["attributes"]["rfc"]) == 13
        elif d["country"] == "CL":
            body, dv = nid.replace(".", "").split("-")
            total = sum(int(c) * (2 + i % 6) for i, c in enumerate(reversed(body)))
            assert dv == {11: "0", 10: "K"}.get(11 - total % 11, str(11 - total % 11))
    issue_dates = [o["issue_date"] for o in first.obligations]
    due_dates = [o["due_date"] for o in first.obligations]
    assert (today - min(due_dates)).days <= 400 and (max(due_dates) - today).days <= 60
    assert max(issue_dates) < today
