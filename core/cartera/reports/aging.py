"""The aging report: open receivables per currency and bucket, in one SQL aggregate.

Each obligation is aged by its own due date (aged receivables), so a debtor with an old
and a new invoice shows in two buckets. Unapplied credit is reported apart, counted as the
debtor balances count it (:mod:`cartera.payments.allocation`): what credit notes have not
given plus what applied payments left unallocated (overpayments). A payment belongs to no
portfolio or product, so with either filter only that portfolio's or product's credit
notes count. Nothing is converted between currencies.
"""

from __future__ import annotations

from datetime import date

from msgspec import Struct
from sqlalchemy import Date, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import money
from cartera.portfolio.aging import BUCKET_NAMES, BucketName, bucket_bounds, bucket_case_sql


class BucketRow(Struct):
    bucket: BucketName
    obligations: int
    debtors: int
    amount: str


class CurrencyAging(Struct):
    currency: str
    total_amount: str
    overdue_amount: str
    unapplied_credit: str
    buckets: list[BucketRow]


class AgingReport(Struct):
    as_of: date
    currencies: list[CurrencyAging]


_SQL = """
SELECT o.currency, {bucket} AS bucket, COUNT(*) AS n, COUNT(DISTINCT o.debtor_id) AS debtors,
       SUM(o.outstanding_minor) AS amount
FROM obligations o {join}
WHERE o.tenant_id = :t AND o.status = 'open' AND o.kind <> 'credit_note'
  AND o.outstanding_minor > 0 {filters}
GROUP BY o.currency, {bucket}
"""

_CREDIT_NOTES_SQL = """
SELECT o.currency, o.outstanding_minor AS amount FROM obligations o {join}
WHERE o.tenant_id = :t AND o.kind = 'credit_note' AND o.status IN ('open', 'paid')
  AND o.outstanding_minor > 0 {filters}
"""

_OVERPAYMENTS_SQL = """
SELECT p.currency, p.unapplied_minor FROM payments p {join}
WHERE p.tenant_id = :t AND p.status = 'applied' AND p.unapplied_minor > 0 {filters}
"""


def _credit_sql(join: str, filters: list[str], *, payments: bool) -> str:
    """Unapplied credit per currency: credit notes, and overpayments unless ``payments`` is
    false (a portfolio or product filter, which payments do not carry). ``join`` and
    ``filters`` name the table alias as ``{a}``."""
    parts = [_CREDIT_NOTES_SQL.format(join=join.format(a="o"),
                                      filters=" ".join(filters).format(a="o"))]
    if payments:
        parts.append(_OVERPAYMENTS_SQL.format(join=join.format(a="p"),
                                              filters=" ".join(filters).format(a="p")))
    return (f"SELECT currency, SUM(amount) FROM ({' UNION ALL '.join(parts)}) AS credit "
            "GROUP BY currency")


async def aging_report(session: AsyncSession, tenant_id: int, as_of: date, *,
                       portfolio_id: int | None = None, product: str | None = None,
                       zone: str | None = None, currency: str | None = None) -> AgingReport:
    filters, params = [], {"t": tenant_id, "as_of": as_of, **bucket_bounds(as_of)}
    join = ""
    if portfolio_id is not None:
        filters.append("AND {a}.portfolio_id = :portfolio_id")
        params["portfolio_id"] = portfolio_id
    if product is not None:
        filters.append("AND {a}.product = :product")
        params["product"] = product
    if currency is not None:
        filters.append("AND {a}.currency = :currency")
        params["currency"] = currency
    if zone is not None:
        join = "JOIN debtors d ON d.id = {a}.debtor_id"
        filters.append("AND d.zone = :zone")
        params["zone"] = zone
    date_binds = [bindparam(k, type_=Date) for k in ("as_of", "b30", "b60", "b90", "b180")]
    sql = text(_SQL.format(bucket=bucket_case_sql("o.due_date"), join=join.format(a="o"),
                           filters=" ".join(filters).format(a="o"))).bindparams(*date_binds)
    rows = (await session.execute(sql, params)).all()
    credit_params = {k: v for k, v in params.items() if k in ("t", "portfolio_id", "product",
                                                             "currency", "zone")}
    credit_sql = _credit_sql(join, filters, payments=portfolio_id is None and product is None)
    credits: dict[str, int] = dict((await session.execute(text(credit_sql),
                                                          credit_params)).all())
    by_currency: dict[str, dict[str, tuple[int, int, int]]] = {}
    for cur, bucket, n, debtors, amount in rows:
        by_currency.setdefault(cur, {})[bucket] = (int(n), int(debtors), int(amount))
    for cur in credits:
        by_currency.setdefault(cur, {})
    currencies = []
    for cur in sorted(by_currency):
        buckets = by_currency[cur]
        total = sum(v[2] for v in buckets.values())
        overdue = total - buckets.get("current", (0, 0, 0))[2]
        currencies.append(CurrencyAging(
            currency=cur, total_amount=money.from_minor(total, cur),
            overdue_amount=money.from_minor(overdue, cur),
            unapplied_credit=money.from_minor(int(credits.get(cur) or 0), cur),
            buckets=[BucketRow(bucket=name, obligations=buckets.get(name, (0, 0, 0))[0],
                               debtors=buckets.get(name, (0, 0, 0))[1],
                               amount=money.from_minor(buckets.get(name, (0, 0, 0))[2], cur))
                     for name in BUCKET_NAMES]))
    return AgingReport(as_of=as_of, currencies=currencies)
