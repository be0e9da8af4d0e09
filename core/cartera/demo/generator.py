"""A realistic, deterministic demo portfolio across Peru, Mexico, Colombia and Chile.

:func:`generate` draws debtors (people and small companies, with national ids, mobile
phones, e-mails, addresses, tags and guarantors), their obligations (installments, loans,
card balances, fees, invoices, debit and credit notes; local currency and some USD) and
their payments from one seeded RNG, relative to ``today`` so that every aging bucket is
populated. :func:`load_demo_portfolio` writes it set-based (bulk Core inserts in batches)
and lets :func:`cartera.payments.allocation.rebalance` allocate the payments, oldest due
first, once for the whole tenant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import geo, money
from cartera.db.base import table_of
from cartera.demo import ids
from cartera.demo.data import (
    COMPANY_NAMES,
    COMPANY_WORDS,
    COUNTRIES,
    PORTFOLIOS,
    TAGS_COMPANY,
    TAGS_PERSON,
    Country,
    Place,
)

BATCH = 2_000
HORIZON_PAST = 400
HORIZON_FUTURE = 60

# Delinquency profile of a debtor: (name, weight, lowest and highest days past due of the
# oldest unpaid obligation; negative = not yet due).
PROFILES: tuple[tuple[str, int, int, int], ...] = (
    ("current", 30, -HORIZON_FUTURE, 0),
    ("1_30", 18, 1, 30),
    ("31_60", 11, 31, 60),
    ("61_90", 8, 61, 90),
    ("91_180", 12, 91, 180),
    ("181_plus", 13, 181, 360),
    ("paid", 8, 0, 0),
)
USD_SHARE = 0.07
_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


@dataclass
class DemoData:
    """Rows ready for bulk insert; child rows carry ``debtor_ref`` until debtor ids exist."""

    debtors: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    contact_points: list[dict[str, Any]] = field(default_factory=list)
    related_parties: list[dict[str, Any]] = field(default_factory=list)
    obligations: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DemoSummary:
    loaded: bool
    debtors: int
    obligations: int
    payments: int
    seconds: float


@dataclass
class _Debit:
    kind: str
    product: str
    currency: str
    amount: int
    issue: date
    due: date
    portfolio: str


class _Generator:
    def __init__(self, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.data = DemoData()
        self.obligation_seq = 0
        self.payment_seq = 0
        self.phones: set[str] = set()

    # --- helpers ------------------------------------------------------------------------

    def amount(self, currency: str, scale: float, sigma: float = 0.8) -> int:
        major = scale * self.rng.lognormvariate(0, sigma)
        digits = money.exponent(currency)
        if digits == 0:
            return max(1_000, int(round(major, -2)))
        if currency == "COP":
            return max(1_000_000, int(round(major, -2)) * 100)
        factor: int = 10**digits
        return max(1_000, round(major * factor))

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def issued(self, due: date, term_days: int) -> date:
        """Issue date ``term_days`` before ``due``, never before the demo's horizon."""
        return max(due - timedelta(days=term_days), self.day(-HORIZON_PAST - 30))

    def clamp_past(self, d: date) -> date:
        return min(d, self.today - timedelta(days=1))

    def mobile(self, place: Place) -> str:
        while True:
            prefix = self.rng.choice(place.mobile_prefixes)
            rest = place.mobile_length - len(prefix)
            number = "+" + prefix + "".join(str(self.rng.randrange(10)) for _ in range(rest))
            if number in self.phones:
                continue
            # numbering plans are patchy (e.g. parts of +56 9 are unassigned): keep drawing
            # until the metadata accepts the number as a mobile one
            parsed = phonenumbers.parse(number)
            if phonenumbers.number_type(parsed) in _MOBILE and \
                    phonenumbers.is_valid_number(parsed):
                self.phones.add(number)
                return number

    # --- debtors ------------------------------------------------------------------------

    def person(self, country: Country) -> tuple[str, str, str, str, str]:
        sex = self.rng.choice("FM")
        first = self.rng.choice(country.female if sex == "F" else country.male)
        if " " not in first and self.rng.random() < 0.3:
            second = self.rng.choice(country.female if sex == "F" else country.male)
            if " " not in second and second != first:
                first = f"{first} {second}"
        s1, s2 = self.rng.sample(country.surnames, 2)
        return sex, first, s1, s2, f"{first} {s1} {s2}"

    def debtor(self, index: int, tenant_id: int) -> None:
        rng = self.rng
        country = rng.choices(COUNTRIES, [c.weight for c in COUNTRIES])[0]
        place = rng.choices(country.places, [p.weight for p in country.places])[0]
        company = rng.random() < 0.12
        ref = f"DEMO-{country.code}-{index:06d}"
        birth = self.today - timedelta(days=rng.randrange(20 * 365, 75 * 365))
        attributes: dict[str, Any] = {"demo": True}
        if company:
            sex, first, s1, s2 = "", "", "", ""
            name = (f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_NAMES)} "
                    f"{rng.choice(country.company_suffixes)}")
            national_id = self.company_id(country, name, birth)
            attributes["customer_type"] = "corporate"
        else:
            sex, first, s1, s2, name = self.person(country)
            national_id = self.person_id(country, first, s1, s2, birth, sex, place, attributes)
            attributes["customer_type"] = "residential"
        profile = rng.choices(PROFILES, [p[1] for p in PROFILES])[0]
        risk = {"current": 780, "paid": 820, "1_30": 650, "31_60": 560, "61_90": 470,
                "91_180": 380, "181_plus": 250}[profile[0]]
        attributes["channel_preference"] = rng.choice(("whatsapp", "sms", "email", "call"))
        self.data.debtors.append({
            "tenant_id": tenant_id, "external_ref": ref,
            "kind": "company" if company else "person", "name": name,
            "national_id": national_id, "country": country.code,
            "subdivision": place.subdivision,
            "timezone": geo.default_timezone(country.code, place.subdivision),
            "zone": place.zone,
            "risk_score": max(0, min(1000, int(rng.gauss(risk, 90)))),
            "attributes": attributes,
        })
        self.contacts(tenant_id, ref, country, place, first, s1, name, company)
        tags = rng.sample(TAGS_COMPANY if company else TAGS_PERSON, rng.randrange(0, 4))
        if profile[0] in ("91_180", "181_plus") and "reincidente" not in tags and not company:
            tags.append("reincidente")
        self.data.tags += [{"tenant_id": tenant_id, "debtor_ref": ref, "tag": t} for t in tags]
        if not company and rng.random() < 0.1:
            g_sex, g_first, g_s1, g_s2, g_name = self.person(country)
            self.data.related_parties.append({
                "tenant_id": tenant_id, "debtor_ref": ref,
                "role": rng.choice(("guarantor", "guarantor", "co_debtor", "reference")),
                "name": g_name,
                "national_id": self.person_id(country, g_first, g_s1, g_s2, birth, g_sex,
                                              place, {}),
                "phone": self.mobile(place), "email": None, "related_debtor_id": None,
            })
        self.obligations(tenant_id, ref, country, company, profile)

    def person_id(self, country: Country, first: str, s1: str, s2: str, birth: date, sex: str,
                  place: Place, attributes: dict[str, Any]) -> str:
        rng = self.rng
        if country.code == "PE":
            return ids.dni_pe(rng)
        if country.code == "MX":
            curp = ids.curp_mx(rng, first, s1, s2, birth, sex, place.subdivision)
            attributes["rfc"] = ids.rfc_mx_person(curp, rng)
            return curp
        if country.code == "CO":
            return ids.cedula_co(rng, birth)
        return ids.rut_cl(rng.randrange(8_000_000, 26_000_000))

    def company_id(self, country: Country, name: str, founded: date) -> str:
        rng = self.rng
        if country.code == "PE":
            return ids.ruc_pe(rng)
        if country.code == "MX":
            return ids.rfc_mx_company(rng, name, founded)
        if country.code == "CO":
            return ids.nit_co(rng)
        return ids.rut_cl(rng.randrange(76_000_000, 78_000_000))

    def contacts(self, tenant_id: int, ref: str, country: Country, place: Place, first: str,
                 surname: str, name: str, company: bool) -> None:
        rng = self.rng
        rows = self.data.contact_points

        def add(kind: str, value: str, label: str | None, consent: str, origin: str,
                preferred: bool, opted_out: list[str] | None = None) -> None:
            rows.append({"tenant_id": tenant_id, "debtor_ref": ref, "kind": kind,
                         "value": value, "label": label, "consent": consent,
                         "opted_out_channels": opted_out or [], "origin": origin,
                         "preferred": preferred})

        phone = self.mobile(place)
        consent = rng.choices(("granted", "unknown", "revoked"), (70, 25, 5))[0]
        add("phone", phone, "móvil", consent, "debtor_provided", True,
            ["sms"] if rng.random() < 0.03 else None)
        if rng.random() < 0.55:
            add("whatsapp", phone, "móvil", "granted" if consent == "granted" else "unknown",
                "debtor_provided", False)
        if rng.random() < 0.15:
            add("phone", self.mobile(place), "otro", "unknown", "found", False)
        if rng.random() < 0.8:
            if company:
                local = rng.choice(("cobranzas", "contabilidad", "gerencia", "pagos"))
                domain = "".join(ids.ascii_upper(w).lower() for w in name.split()[:2]) + ".com"
            else:
                local = (f"{ids.ascii_upper(first.split()[0]).lower()}."
                         f"{ids.ascii_upper(surname).lower()}{rng.randrange(1, 999)}")
                domain = rng.choice(country.email_domains)
            add("email", f"{local}@{domain}", "personal" if not company else "trabajo",
                rng.choice(("granted", "unknown")), "debtor_provided", False)
        if rng.random() < 0.6:
            address = (f"{rng.choice(place.streets)} {rng.randrange(100, 4999)}, "
                       f"{rng.choice(place.districts)}, {place.zone}")
            add("address", address, "domicilio", "unknown", "debtor_provided", False)

    # --- obligations and payments -------------------------------------------------------

    def obligations(self, tenant_id: int, ref: str, country: Country, company: bool,
                    profile: tuple[str, int, int, int]) -> None:
        rng = self.rng
        name, _w, low, high = profile
        paid_all = name == "paid"
        dpd = rng.randint(low, high) if not paid_all else rng.randint(-30, 200)
        first_unpaid = self.day(-dpd)
        portfolio = "pyme" if company else "consumo" if rng.random() < 0.55 else "tarjetas"
        cur = country.currency
        if portfolio == "consumo":
            debits, k_paid = self.installments(cur, country.scale, first_unpaid)
        elif portfolio == "tarjetas":
            debits, k_paid = self.card(cur, country.scale / 2, first_unpaid)
        else:
            debits, k_paid = self.invoices(cur, country.scale * 4, first_unpaid)
        if paid_all:
            k_paid = len(debits)
        self.emit(tenant_id, ref, country, debits, k_paid, name, dpd)
        if rng.random() < USD_SHARE:
            usd_due = self.day(-rng.randint(-HORIZON_FUTURE, 300))
            kind, product = (("invoice", "importaciones") if company
                             else ("loan", "prestamo_vehicular"))
            usd = _Debit(kind, product, "USD", self.amount("USD", 2_500, 0.7),
                         self.issued(usd_due, rng.choice((90, 180, 360))), usd_due,
                         "pyme" if company else "consumo")
            self.emit(tenant_id, ref, country, [usd], 0, "usd", 0)

    def installments(self, cur: str, scale: float, first_unpaid: date
                     ) -> tuple[list[_Debit], int]:
        rng = self.rng
        if rng.random() < 0.2:  # a bullet loan, due in full at maturity
            issue = self.issued(first_unpaid, rng.choice((90, 180, 360)))
            return [_Debit("loan", "prestamo_personal", cur, self.amount(cur, scale * 2),
                           issue, first_unpaid, "consumo")], 0
        plan = rng.choice((6, 12, 18, 24, 36))
        room = (first_unpaid - self.day(-HORIZON_PAST)).days // 30
        k_paid = rng.randint(0, max(0, min(plan - 1, room, 8)))
        start = first_unpaid - timedelta(days=30 * k_paid)
        issue = min(start - timedelta(days=30), self.day(-rng.randint(1, 20)))
        quota = self.amount(cur, scale / 6, 0.6)
        product = rng.choice(("prestamo_personal", "prestamo_personal", "prestamo_vehicular",
                              "credito_hipotecario"))
        debits = []
        for i in range(plan):
            due = start + timedelta(days=30 * i)
            if due > self.day(HORIZON_FUTURE):
                break
            debits.append(_Debit("installment", product, cur, quota, issue, due, "consumo"))
        return debits, k_paid

    def card(self, cur: str, scale: float, first_unpaid: date) -> tuple[list[_Debit], int]:
        rng = self.rng
        first_unpaid = min(first_unpaid, self.day(19))  # statements are issued 20 days ahead
        room = (first_unpaid - self.day(-HORIZON_PAST)).days // 30
        k_paid = rng.randint(0, max(0, min(room, 5)))
        product = rng.choice(("tarjeta_clasica", "tarjeta_clasica", "tarjeta_oro",
                              "tarjeta_platinum"))
        debits = []
        due = first_unpaid - timedelta(days=30 * k_paid)
        unpaid = 0
        while due <= self.day(19) and unpaid < 4:
            debits.append(_Debit("credit_card_balance", product, cur, self.amount(cur, scale),
                                 due - timedelta(days=20), due, "tarjetas"))
            if due >= first_unpaid:
                unpaid += 1
            due += timedelta(days=30)
        if first_unpaid < self.today - timedelta(days=5):
            fee_due = min(first_unpaid + timedelta(days=30), self.today + timedelta(days=10))
            debits.append(_Debit("fee", "comision_mora", cur, self.amount(cur, scale / 25, 0.3),
                                 first_unpaid + timedelta(days=1), fee_due, "tarjetas"))
        if not debits:
            debits.append(_Debit("credit_card_balance", product, cur, self.amount(cur, scale),
                                 first_unpaid - timedelta(days=20), first_unpaid, "tarjetas"))
        return debits, k_paid

    def invoices(self, cur: str, scale: float, first_unpaid: date) -> tuple[list[_Debit], int]:
        rng = self.rng
        product = rng.choice(("capital_de_trabajo", "servicios", "suministros", "arrendamiento"))
        debits = []
        oldest = self.day(-HORIZON_PAST)
        k_paid = rng.randint(0, 4) if first_unpaid - oldest > timedelta(days=30) else 0
        for _ in range(k_paid):
            due = oldest + timedelta(days=rng.randrange(0, (first_unpaid - oldest).days))
            debits.append(self.invoice(cur, scale, due, product))
        debits.append(self.invoice(cur, scale, first_unpaid, product))
        for _ in range(rng.randint(0, 3)):
            span = (self.day(HORIZON_FUTURE) - first_unpaid).days
            due = first_unpaid + timedelta(days=rng.randrange(0, max(1, span)))
            debits.append(self.invoice(cur, scale, due, product))
        debits.sort(key=lambda d: d.due)
        # paid invoices come first in due order; keep their count
        if first_unpaid < self.today - timedelta(days=30) and rng.random() < 0.35:
            debits.append(_Debit("debit_note", "intereses_moratorios", cur,
                                 self.amount(cur, scale / 30, 0.4), self.today
                                 - timedelta(days=10), self.today + timedelta(days=5), "pyme"))
        return debits, k_paid

    def invoice(self, cur: str, scale: float, due: date, product: str) -> _Debit:
        terms = self.rng.choice((30, 45, 60, 90))
        terms = max(terms, (due - self.today).days + 1)
        return _Debit("invoice", product, cur, self.amount(cur, scale), due
                      - timedelta(days=terms), due, "pyme")

    def emit(self, tenant_id: int, ref: str, country: Country, debits: Sequence[_Debit],
             k_paid: int, profile: str, dpd: int) -> None:
        """Write the debits, credit notes and the payments that settle the first ``k_paid``."""
        rng = self.rng
        rows = self.data.obligations
        ordered = sorted(range(len(debits)), key=lambda i: (debits[i].due, i))
        paid_set = set(ordered[:k_paid])
        write_off = profile == "181_plus" and rng.random() < 0.2
        disputed = -1
        if profile not in ("paid", "current") and rng.random() < 0.04 and k_paid < len(debits):
            disputed = ordered[k_paid]
        for i, d in enumerate(debits):
            prior = 0
            status = "open"
            if i not in paid_set:
                if rng.random() < 0.05:
                    prior = d.amount * rng.randint(10, 50) // 100
                if write_off and d.due < self.today - timedelta(days=180):
                    status = "written_off"
                elif i == disputed:
                    status = "disputed"
            self.obligation_seq += 1
            rows.append({
                "tenant_id": tenant_id, "external_ref": f"DEMO-OB-{self.obligation_seq:07d}",
                "debtor_ref": ref, "portfolio_code": d.portfolio, "kind": d.kind,
                "product": d.product, "currency": d.currency, "original_minor": d.amount,
                "prior_paid_minor": prior, "outstanding_minor": d.amount - prior,
                "issue_date": d.issue, "due_date": d.due, "status": status,
            })
        for i in ordered[:k_paid]:
            d = debits[i]
            if d.issue >= self.today:
                continue
            paid_on = d.due + timedelta(days=rng.randint(-10, 6))
            paid_on = max(d.issue, self.clamp_past(paid_on))
            self.payment(tenant_id, ref, country, d.currency, d.amount, paid_on)
        unpaid = [i for i in ordered[k_paid:] if i != disputed]
        if unpaid and profile != "paid" and rng.random() < 0.3:
            d = debits[unpaid[0]]
            start = max(d.issue, self.today - timedelta(days=max(dpd, 1) + 20))
            if start < self.today:
                days = max(1, (self.today - start).days)
                paid_on = self.clamp_past(start + timedelta(days=rng.randrange(days)))
                part = d.amount * rng.randint(15, 80) // 100
                if part > 0:
                    self.payment(tenant_id, ref, country, d.currency, part, paid_on)
        if debits and debits[0].kind in ("invoice", "credit_card_balance") \
                and rng.random() < 0.15:
            base = debits[ordered[-1]]
            issue = self.clamp_past(max(base.issue + timedelta(days=3),
                                        self.today - timedelta(days=120)))
            self.obligation_seq += 1
            note = max(1, base.amount * rng.randint(5, 30) // 100)
            rows.append({
                "tenant_id": tenant_id, "external_ref": f"DEMO-OB-{self.obligation_seq:07d}",
                "debtor_ref": ref, "portfolio_code": base.portfolio, "kind": "credit_note",
                "product": "devolucion" if base.kind == "invoice" else "contracargo",
                "currency": base.currency, "original_minor": note, "prior_paid_minor": 0,
                "outstanding_minor": note, "issue_date": issue, "due_date": issue,
                "status": "open",
            })

    def payment(self, tenant_id: int, ref: str, country: Country, currency: str, amount: int,
                paid_on: date) -> None:
        self.payment_seq += 1
        method = self.rng.choice(country.payment_methods)
        self.data.payments.append({
            "tenant_id": tenant_id, "external_ref": f"DEMO-PG-{self.payment_seq:07d}",
            "debtor_ref": ref, "currency": currency, "amount_minor": amount,
            "unapplied_minor": 0, "paid_on": paid_on, "method": method,
            "reference": f"{method.upper()}-{self.rng.randrange(10**7, 10**8)}",
            "status": "applied",
        })


def generate(tenant_id: int, debtors: int, seed: int, today: date) -> DemoData:
    """The demo rows for ``debtors`` debtors; the same seed and day give the same rows."""
    gen = _Generator(seed, today)
    for i in range(1, debtors + 1):
        gen.debtor(i, tenant_id)
    return gen.data


async def _bulk(session: AsyncSession, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    batch: list[dict[str, Any]] = []
    count = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            await session.execute(insert(table), batch)
            count += len(batch)
            batch = []
    if batch:
        await session.execute(insert(table), batch)
        count += len(batch)
    return count


def _resolve(rows: list[dict[str, Any]], debtor_ids: dict[str, int],
             portfolio_ids: dict[str, int] | None = None) -> Iterable[dict[str, Any]]:
    for row in rows:
        out = {k: v for k, v in row.items() if k not in ("debtor_ref", "portfolio_code")}
        out["debtor_id"] = debtor_ids[row["debtor_ref"]]
        if portfolio_ids is not None:
            out["portfolio_id"] = portfolio_ids[row["portfolio_code"]]
        yield out


async def _analyze(session: AsyncSession, tables: Sequence[str]) -> None:
    """Refresh planner statistics after a bulk load (without them SQLite nests loops)."""
    for name in tables:
        await session.execute(text(f"ANALYZE {name}"))


async def load_demo_portfolio(session: AsyncSession, tenant_id: int, debtors: int, seed: int,
                              today: date) -> DemoSummary:
    """Load the demo portfolio into an empty tenant (a tenant with debtors is left alone).

    Runs in the caller's transaction; the caller commits.
    """
    from cartera.api.context import Actor
    from cartera.audit.service import record
    from cartera.payments.allocation import DebtorScope, rebalance
    from cartera.payments.models import Payment
    from cartera.portfolio.models import (
        ContactPoint,
        Debtor,
        DebtorTag,
        Obligation,
        Portfolio,
        RelatedParty,
    )

    started = time.perf_counter()
    if await session.scalar(select(Debtor.id).where(Debtor.tenant_id == tenant_id).limit(1)):
        return DemoSummary(False, 0, 0, 0, 0.0)
    data = generate(tenant_id, debtors, seed, today)

    existing = set((await session.scalars(
        select(Portfolio.code).where(Portfolio.tenant_id == tenant_id))).all())
    await _bulk(session, table_of(Portfolio), (
        {"tenant_id": tenant_id, "code": code, "name": name, "description": description}
        for code, name, description in PORTFOLIOS if code not in existing))
    portfolio_ids = {code: pid for pid, code in (await session.execute(
        select(Portfolio.id, Portfolio.code).where(Portfolio.tenant_id == tenant_id))).all()}

    await _bulk(session, table_of(Debtor), data.debtors)
    debtor_ids = {ref: did for did, ref in (await session.execute(
        select(Debtor.id, Debtor.external_ref).where(Debtor.tenant_id == tenant_id))).all()}
    await _bulk(session, table_of(DebtorTag), _resolve(data.tags, debtor_ids))
    await _bulk(session, table_of(ContactPoint), _resolve(data.contact_points, debtor_ids))
    await _bulk(session, table_of(RelatedParty), _resolve(data.related_parties, debtor_ids))
    await _bulk(session, table_of(Obligation),
                _resolve(data.obligations, debtor_ids, portfolio_ids))
    await _bulk(session, table_of(Payment), _resolve(data.payments, debtor_ids))
    await _analyze(session, ("debtors", "obligations", "payments", "allocations"))
    await rebalance(session, tenant_id, DebtorScope.tenant(tenant_id), today)
    summary = DemoSummary(True, len(data.debtors), len(data.obligations), len(data.payments),
                          time.perf_counter() - started)
    record(session, Actor(tenant_id, None, None), "demo.loaded", "tenant", tenant_id,
           {"debtors": summary.debtors, "obligations": summary.obligations,
            "payments": summary.payments, "seed": seed, "as_of": today.isoformat()})
    await session.flush()
    return summary
