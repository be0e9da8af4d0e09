"""Segment rules: validation, compilation to one set-based SQL CASE, and Python evaluation.

A rule is a JSON tree: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a
comparison ``{"feature": "days_past_due", "op": "gte", "value": 31}``. ``{"all": []}``
matches everything (the catch-all).

Semantics, identical in SQL and in Python (explain): a missing value (no risk score, never
paid, an absent attribute) fails every comparison, and ``ne``/``not_in`` are the negation
of ``eq``/``in`` (so a debtor without a risk score *is* ``ne 5``). Days past due are 0 when
nothing is overdue. Day counts are compared through date bounds computed from ``as_of``
(``days_past_due >= 31`` is ``oldest_unpaid_due_date <= as_of - 31``), so the SQL has no
dialect-specific date arithmetic. Amounts are per currency: an amount comparison names its
``currency`` and its value is a decimal string in that currency's precision.

Two features take a parameter besides the value: ``payments_last_days`` counts the payments
not reversed with ``paid_on`` in the ``days`` days ending on ``as_of`` (``{"feature":
"payments_last_days", "days": 30, "op": "gte", "value": 1}``), and ``consent`` is true when
some contact point passes the contact gate's own channel checks (its kind reaches the
``channel`` per ``messaging.gate.CONTACT_KINDS``, consent not revoked, the channel not opted
out nor suppressed by a provider). Both are computed as ``GROUP BY debtor_id`` aggregates
joined once, never per debtor.

Negotiation (:mod:`cartera.negotiation`) adds two more, each one aggregate of the same kind:
``broken_promises`` counts the debtor's promises to pay broken as of ``as_of`` (status
broken, or still pending with a promised date before ``as_of``); with ``days`` only those
whose promised date is in the ``days`` days before ``as_of`` ([as_of - days, as_of), so
``days: 1`` is a promise that fell due yesterday); ``partly_kept_promises`` counts those
that fell due with some but not all of the amount paid, the same way, and
``kept_promises`` those paid in full (with ``days``: promised on or after as_of - days).
Strategies read them through their entry and stop rules (stop when a promise is kept,
re-enter when one is broken or partly kept). ``active_installment_plan`` is true when
the debtor has an installment plan in status active.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
)

from cartera import money
from cartera.errors import Invalid
from cartera.messaging.gate import CONTACT_KINDS
from cartera.negotiation.models import Arrangement, Promise
from cartera.payments.models import Payment
from cartera.portfolio import aging
from cartera.portfolio.models import (
    DEBTOR_KINDS,
    ContactPoint,
    Debtor,
    DebtorBalance,
    DebtorTag,
    Obligation,
    Portfolio,
)
from cartera.portfolio.summary import Debtors as Debtors
from cartera.portfolio.summary import only as only
from cartera.segmentation.models import Placement

ALL_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in", "has_tag")
ORDERED_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in")
EQUALITY_OPS = ("eq", "ne", "in", "not_in")
MAX_DEPTH = 12
MAX_RULE_NODES = 2000
"""Groups and comparisons in a whole rule set: its SQL stays within what the database plans."""
MAX_LIST = 1000
MAX_DAYS = 36_500
MAX_WINDOW = 3650  # ``days`` of a windowed count (payments_last_days)
MAX_NUMBER = 10**15  # well inside BIGINT and a double's exact integers
_ATTR_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@dataclass(frozen=True)
class FeatureSpec:
    kind: str  # days | int | amount | string | enum | tags | exists | bool
    ops: tuple[str, ...]
    currency: str = "no"  # no | optional | required
    choices: tuple[str, ...] = ()
    description: str = ""
    days: bool = False  # the comparison names a window of ``days`` (1..MAX_WINDOW)
    channel: bool = False  # the comparison names a contact ``channel``
    optional_days: bool = False  # with ``days``: the window may be left out (no window)


FEATURES: dict[str, FeatureSpec] = {
    "days_past_due": FeatureSpec("days", ORDERED_OPS, "optional",
                                 description="From the oldest unpaid due date (any currency, "
                                             "or the given one)."),
    "days_since_last_payment": FeatureSpec("days", ORDERED_OPS,
                                           description="Missing when never paid."),
    "overdue_amount": FeatureSpec("amount", ORDERED_OPS, "required"),
    "outstanding_amount": FeatureSpec("amount", ORDERED_OPS, "required"),
    "aging_bucket": FeatureSpec("enum", EQUALITY_OPS, "optional", aging.BUCKET_NAMES),
    "zone": FeatureSpec("string", EQUALITY_OPS),
    "country": FeatureSpec("string", EQUALITY_OPS),
    "subdivision": FeatureSpec("string", EQUALITY_OPS),
    "kind": FeatureSpec("enum", EQUALITY_OPS, choices=DEBTOR_KINDS),
    "risk_score": FeatureSpec("int", ORDERED_OPS),
    "open_obligations": FeatureSpec("int", ORDERED_OPS),
    "tags": FeatureSpec("tags", ("has_tag",)),
    "product": FeatureSpec("exists", EQUALITY_OPS,
                           description="eq/in: some open obligation has it; ne/not_in: none."),
    "portfolio": FeatureSpec("exists", EQUALITY_OPS,
                             description="Portfolio code; eq/in: some open obligation is in it."),
    "stage": FeatureSpec("string", EQUALITY_OPS,
                         description="The debtor's collection stage code (from days past due "
                                     "or set by hand), as assigned just before segmentation."),
    "payments_last_days": FeatureSpec(
        "int", ORDERED_OPS, days=True,
        description="How many payments (not reversed) the debtor made in the ``days`` days "
                    "ending on the evaluation date: paid_on in (as_of - days, as_of]."),
    "consent": FeatureSpec(
        "bool", ("eq", "ne"), channel=True,
        description="True when some contact point can be used on ``channel`` as the contact "
                    "gate sees it: a kind that channel reaches, consent not revoked, the "
                    "channel not opted out nor suppressed (hard bounce, spam complaint, "
                    "carrier opt-out)."),
    "broken_promises": FeatureSpec(
        "int", ORDERED_OPS, days=True, optional_days=True,
        description="How many of the debtor's promises to pay are broken as of the "
                    "evaluation date (status broken, or pending with a promised date before "
                    "it); with ``days``, only those whose promised date is in the ``days`` "
                    "days before it: promised_date in [as_of - days, as_of)."),
    "partly_kept_promises": FeatureSpec(
        "int", ORDERED_OPS, days=True, optional_days=True,
        description="How many of the debtor's promises to pay were partly kept as of the "
                    "evaluation date (some of the amount paid by the promised date, not "
                    "all: status partly_kept); ``days`` as for broken_promises."),
    "kept_promises": FeatureSpec(
        "int", ORDERED_OPS, days=True, optional_days=True,
        description="How many of the debtor's promises to pay are kept (paid in full); "
                    "with ``days``, only those whose promised date is on or after "
                    "as_of - days (recent or still to come)."),
    "active_installment_plan": FeatureSpec(
        "bool", ("eq", "ne"),
        description="True when the debtor has an installment plan in status active."),
}
PROMISE_FEATURES = ("broken_promises", "partly_kept_promises", "kept_promises")
CHANNELS = tuple(CONTACT_KINDS)


@dataclass(frozen=True)
class Comparison:
    feature: str
    op: str
    value: Any  # as given (for traces)
    values: tuple[Any, ...]  # normalised: minor units for amounts, one item unless in/between
    currency: str | None
    attr_type: str | None = None  # str | num | bool for attributes.<name>
    days: int | None = None  # the window of payments_last_days (or broken_promises)
    channel: str | None = None  # the channel of consent


@dataclass(frozen=True)
class Group:
    op: str  # all | any | not
    children: tuple[Rule, ...]


Rule = Comparison | Group


# --- validation ---------------------------------------------------------------------------

def _fail(message: str, code: str, param: str) -> Invalid:
    return Invalid(message, code=code, param=param)


def rule_nodes(raw: Any, depth: int = 0) -> int:
    """How many groups and comparisons ``raw`` holds (counted no deeper than parsing goes)."""
    if depth > MAX_DEPTH + 1:
        return 0
    if isinstance(raw, list):
        return sum(rule_nodes(item, depth) for item in raw)
    if not isinstance(raw, dict):
        return 0
    return 1 + sum(rule_nodes(raw[k], depth + 1) for k in ("all", "any", "not") if k in raw)


def parse_rule(raw: Any, path: str, depth: int = 0) -> Rule:
    """Validate a JSON rule and return its parsed form; errors name ``path``."""
    if depth > MAX_DEPTH:
        raise _fail(f"rules nest at most {MAX_DEPTH} levels", "rule_too_deep", path)
    if not isinstance(raw, dict):
        raise _fail("a rule is an object", "invalid_rule", path)
    groups = [k for k in ("all", "any", "not") if k in raw]
    if groups:
        if len(raw) != 1:
            raise _fail("a group has exactly one key: all, any or not", "invalid_rule", path)
        key = groups[0]
        if key == "not":
            return Group("not", (parse_rule(raw["not"], f"{path}.not", depth + 1),))
        items = raw[key]
        if not isinstance(items, list):
            raise _fail(f"{key!r} takes a list of rules", "invalid_rule", f"{path}.{key}")
        if key == "any" and not items:
            raise _fail("'any' of nothing never matches", "empty_group", f"{path}.any")
        return Group(key, tuple(parse_rule(r, f"{path}.{key}[{i}]", depth + 1)
                                for i, r in enumerate(items)))
    return _parse_comparison(raw, path)


def _parse_comparison(raw: dict[str, Any], path: str) -> Comparison:
    unknown = set(raw) - {"feature", "op", "value", "currency", "days", "channel"}
    if unknown:
        key = sorted(unknown)[0]
        raise _fail(f"unknown key {key!r}", "invalid_rule", f"{path}.{key}")
    feature = raw.get("feature")
    if not isinstance(feature, str):
        raise _fail("a comparison needs a feature", "invalid_rule", f"{path}.feature")
    attr_name = None
    if feature.startswith("attributes."):
        attr_name = feature.removeprefix("attributes.")
        if not _ATTR_NAME.match(attr_name):
            raise _fail("attribute names are 1-64 letters, digits, _ or -", "unknown_feature",
                        f"{path}.feature")
        spec = FeatureSpec("attr", ORDERED_OPS)
    elif feature in FEATURES:
        spec = FEATURES[feature]
    else:
        raise _fail(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}, "
                    "attributes.<name>", "unknown_feature", f"{path}.feature")
    op = raw.get("op")
    if op not in spec.ops:
        raise _fail(f"{feature} supports {', '.join(spec.ops)}", "invalid_operator",
                    f"{path}.op")
    currency = raw.get("currency")
    if currency is not None:
        if spec.currency == "no":
            raise _fail(f"{feature} takes no currency", "unexpected_currency",
                        f"{path}.currency")
        if not isinstance(currency, str) or not money.is_currency(currency):
            raise _fail(f"{currency!r} is not an ISO 4217 currency", "unknown_currency",
                        f"{path}.currency")
    elif spec.currency == "required":
        raise _fail(f"{feature} needs a currency: amounts are never mixed across currencies",
                    "missing_currency", f"{path}.currency")
    days, channel = _parse_days(raw, spec, feature, path), _parse_channel(raw, spec, feature, path)
    if "value" not in raw:
        raise _fail("a comparison needs a value", "invalid_value", f"{path}.value")
    value = raw["value"]
    vpath = f"{path}.value"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise _fail(f"{op} takes a list of 1 to {MAX_LIST} values", "invalid_value", vpath)
        items = [(v, f"{vpath}[{i}]") for i, v in enumerate(value)]
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail("between takes [low, high]", "invalid_value", vpath)
        items = [(v, f"{vpath}[{i}]") for i, v in enumerate(value)]
    else:
        items = [(value, vpath)]
    attr_type = None
    if attr_name is not None:
        types = {_attr_type(v) for v, _ in items}
        if None in types or len(types) != 1:
            raise _fail("attribute values are strings, numbers or booleans, all of one type",
                        "invalid_value", vpath)
        attr_type = types.pop()
        if attr_type == "num" and any(abs(v) > MAX_NUMBER for v, _ in items):
            raise _fail("number out of range", "invalid_value", vpath)
        if op not in EQUALITY_OPS and attr_type != "num":
            raise _fail(f"{op} compares numbers only", "invalid_value", vpath)
        if attr_type == "bool" and op not in ("eq", "ne"):
            raise _fail("booleans compare with eq or ne", "invalid_value", vpath)
        values = tuple(v for v, _ in items)
    else:
        values = tuple(_normalise(spec, v, p, currency) for v, p in items)
    if op == "between" and values[0] > values[1]:
        raise _fail(f"between [{value[0]}, {value[1]}] matches nothing: low exceeds high",
                    "impossible_range", vpath)
    return Comparison(feature, op, value, values, currency, attr_type, days, channel)


def _parse_days(raw: dict[str, Any], spec: FeatureSpec, feature: str, path: str) -> int | None:
    """The ``days`` window: required (1..MAX_WINDOW) where the feature counts over one
    (optional where ``optional_days``), refused elsewhere; errors name ``path.days`` (like
    ``currency``)."""
    if "days" not in raw:
        if spec.days and not spec.optional_days:
            raise _fail(f"{feature} needs days: the window to count over, e.g. 30",
                        "missing_days", f"{path}.days")
        return None
    if not spec.days:
        raise _fail(f"{feature} takes no days", "unexpected_days", f"{path}.days")
    days = raw["days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_WINDOW:
        raise _fail(f"days is an integer from 1 to {MAX_WINDOW}", "invalid_days",
                    f"{path}.days")
    return days


def _parse_channel(raw: dict[str, Any], spec: FeatureSpec, feature: str,
                   path: str) -> str | None:
    """The ``channel``: required and one of :data:`CHANNELS` where the feature is per
    channel, refused elsewhere; errors name ``path.channel``."""
    if "channel" not in raw:
        if spec.channel:
            raise _fail(f"{feature} needs a channel: one of {', '.join(CHANNELS)}",
                        "missing_channel", f"{path}.channel")
        return None
    if not spec.channel:
        raise _fail(f"{feature} takes no channel", "unexpected_channel", f"{path}.channel")
    channel = raw["channel"]
    if channel not in CHANNELS:
        raise _fail(f"{channel!r} is not a channel; known: {', '.join(CHANNELS)}",
                    "unknown_channel", f"{path}.channel")
    return str(channel)


def _attr_type(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    return None


def _normalise(spec: FeatureSpec, v: Any, path: str, currency: str | None) -> Any:
    if spec.kind == "bool":
        if not isinstance(v, bool):
            raise _fail("expected true or false", "invalid_value", path)
        return v
    if spec.kind in ("days", "int"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail("expected an integer", "invalid_value", path)
        if spec.kind == "days" and not 0 <= v <= MAX_DAYS:
            raise _fail(f"day counts are 0 to {MAX_DAYS}", "invalid_value", path)
        if abs(v) > MAX_NUMBER:
            raise _fail("number out of range", "invalid_value", path)
        return v
    if spec.kind == "amount":
        if not isinstance(v, str):
            raise _fail("amounts are decimal strings, e.g. \"1500.00\"", "invalid_value", path)
        assert currency is not None
        try:
            minor = money.to_minor(v, currency)
        except money.MoneyError as exc:
            raise _fail(str(exc), exc.code, path) from None
        if minor > MAX_NUMBER * 1000:
            raise _fail("amount out of range", "invalid_value", path)
        return minor
    if not isinstance(v, str) or not v:
        raise _fail("expected a non-empty string", "invalid_value", path)
    if spec.kind == "enum" and v not in spec.choices:
        raise _fail(f"expected one of {', '.join(spec.choices)}", "invalid_value", path)
    return v


def walk(rule: Rule) -> list[Comparison]:
    if isinstance(rule, Comparison):
        return [rule]
    return [c for child in rule.children for c in walk(child)]


def walk_paths(rule: Rule, path: str) -> list[tuple[str, Comparison]]:
    """Every comparison of ``rule`` with its path, as :func:`parse_rule` names them."""
    if isinstance(rule, Comparison):
        return [(path, rule)]
    if rule.op == "not":
        return walk_paths(rule.children[0], f"{path}.not")
    return [found for i, child in enumerate(rule.children)
            for found in walk_paths(child, f"{path}.{rule.op}[{i}]")]


def is_catch_all(rule: Rule) -> bool:
    return isinstance(rule, Group) and rule.op == "all" and not rule.children


# --- compilation to SQL -------------------------------------------------------------------

@dataclass
class CompiledRules:
    """Rules compiled over ``debtors d LEFT JOIN`` a per-debtor summary of ``debtor_balances``.

    ``select(outcomes)`` is one statement: ``SELECT d.id, CASE WHEN r1 THEN o1 ... END``.
    The summary holds the amounts of the currencies the rules name; ``totals`` adds the
    given ``currencies`` and, per currency, whether the debtor has a balance row in it
    (``has_<i>``), and ``select`` then returns them (preview's totals, without re-reading
    ``debtor_balances``).
    """

    rules: Sequence[Rule]
    tenant_id: int
    as_of: date
    dialect: str
    currencies: list[str] = field(default_factory=list)
    totals: bool = False
    stage_ids: Mapping[str, int] = field(default_factory=dict)
    """The tenant's stage codes and ids: ``stage`` rules compare ids, so no join to
    ``stages`` (a code missing here matches nothing)."""
    balances: Any = None
    """Where the summary is read from: ``debtor_balances`` (None), or a selectable with its
    columns such as :func:`cartera.portfolio.summary.as_of` (reads that write nothing)."""

    def __post_init__(self) -> None:
        found = {c.currency for r in self.rules for c in walk(r) if c.currency}
        if self.totals:
            found |= set(self.currencies)
        self.currencies = sorted(c for c in found if c)
        self.d = Debtor.__table__.alias("d")
        if self.balances is None:
            self.balances = DebtorBalance.__table__
        bt = self.balances
        cols: list[Any] = [
            bt.c.debtor_id,
            func.min(bt.c.oldest_unpaid_due_date).label("oldest_due"),
            func.max(bt.c.last_payment_date).label("last_paid"),
            func.sum(bt.c.open_count).label("open_count"),
        ]
        # A debtor has at most one summary row per currency (its primary key), so MAX picks
        # that row's amount: the same as SUM, but it stays a bigint (PostgreSQL's SUM of
        # bigints is numeric, slower to aggregate and to compare over a million debtors).
        for i, cur in enumerate(self.currencies):
            this = bt.c.currency == cur
            cols += [
                func.max(case((this, bt.c.outstanding_minor))).label(f"out_{i}"),
                func.max(case((this, bt.c.overdue_minor))).label(f"ovd_{i}"),
                func.min(case((this, bt.c.oldest_unpaid_due_date))).label(f"oldest_{i}"),
            ]
            if self.totals:
                cols.append(func.max(case((this, 1), else_=0)).label(f"has_{i}"))
        self._balance_cols = cols
        used = [c for r in self.rules for c in walk(r)]
        self.uses_stage = any(c.feature == "stage" for c in used)
        self.windows = sorted({c.days for c in used
                               if c.days is not None and c.feature == "payments_last_days"})
        self.channels = sorted({c.channel for c in used if c.channel is not None})
        # (promise feature, window) pairs; a None window counts every such promise
        self.promise_windows: list[tuple[str, int | None]] = sorted(
            {(c.feature, c.days) for c in used if c.feature in PROMISE_FEATURES},
            key=lambda k: (k[0], -1 if k[1] is None else k[1]))
        self.uses_plans = any(c.feature == "active_installment_plan" for c in used)
        self.pl = Placement.__table__.alias("pl")

    def _from(self, b: Any, extras: Sequence[Any], debtors: Debtors,
              placement: bool = False) -> Any:
        """``debtors`` LEFT JOIN the summary, the extras and (when a rule reads the stage,
        or ``placement``) ``debtor_placements``, which is limited to ``debtors`` too (the
        planner does not carry a range from one side of a join to the other)."""
        joined = self.d.outerjoin(b, b.c.debtor_id == self.d.c.id)
        for x in extras:
            joined = joined.outerjoin(x, x.c.debtor_id == self.d.c.id)
        if self.uses_stage or placement:
            pl = self.pl
            joined = joined.outerjoin(pl, and_(pl.c.debtor_id == self.d.c.id,
                                               *only(pl.c.debtor_id, debtors)))
        return joined

    def _extras(self, debtors: Debtors) -> dict[str, Any]:
        """The per-debtor aggregates the rules need besides the balance summary: ``pay``
        (payments per window), ``cp`` (usable contact points per channel), ``pr`` (broken
        promises per window) and ``ar`` (active installment plans), each one ``GROUP BY
        debtor_id`` sub-select joined once, never a per-debtor look-up."""
        found: dict[str, Any] = {}
        if self.windows:
            found["pay"] = self._payments(debtors)
        if self.channels:
            found["cp"] = self._contacts(debtors)
        if self.promise_windows:
            found["pr"] = self._promises(debtors)
        if self.uses_plans:
            found["ar"] = self._plans(debtors)
        return found

    def _promises(self, debtors: Debtors) -> Any:
        """``brk_<i>``: for each (feature, window) of :attr:`promise_windows`, the debtor's
        promises counted in one pass: *broken* as of ``as_of`` (status broken, or pending
        with a promised date before ``as_of``: due, the periodic job has not yet settled it
        into broken or partly kept) and *partly kept* (status partly_kept), both with a
        promised date in ``[as_of - window, as_of)``; *kept* (status kept) with a promised
        date on or after ``as_of - window``. Any date when the window is None."""
        pr = Promise.__table__
        due_pending = and_(pr.c.status == "pending", pr.c.promised_date < self.as_of)
        what = {
            "broken_promises": or_(pr.c.status == "broken", due_pending),
            "partly_kept_promises": pr.c.status == "partly_kept",
            "kept_promises": pr.c.status == "kept",
        }
        cols = []
        for i, (feature, n) in enumerate(self.promise_windows):
            cond = [what[feature]]
            if n is not None:
                cond.append(pr.c.promised_date >= self._bound(n))
                if feature != "kept_promises":
                    cond.append(pr.c.promised_date < self.as_of)
            cols.append(func.sum(case((and_(*cond), 1), else_=0)).label(f"brk_{i}"))
        statuses = {"pending", "broken", "partly_kept"} if any(
            f != "kept_promises" for f, _ in self.promise_windows) else set()
        if any(f == "kept_promises" for f, _ in self.promise_windows):
            statuses.add("kept")
        stmt = select(pr.c.debtor_id, *cols).where(
            pr.c.tenant_id == self.tenant_id, pr.c.status.in_(sorted(statuses)))
        windows = [n for _, n in self.promise_windows]
        if None not in windows:
            stmt = stmt.where(pr.c.promised_date >= self._bound(
                max(n for n in windows if n is not None)))
        stmt = stmt.where(*only(pr.c.debtor_id, debtors))
        return stmt.group_by(pr.c.debtor_id).subquery("pr")

    def _plans(self, debtors: Debtors) -> Any:
        """``plans_active``: how many installment plans of the debtor are active."""
        a = Arrangement.__table__
        stmt = select(a.c.debtor_id, func.count().label("plans_active")).where(
            a.c.tenant_id == self.tenant_id, a.c.status == "active")
        stmt = stmt.where(*only(a.c.debtor_id, debtors))
        return stmt.group_by(a.c.debtor_id).subquery("ar")

    def _payments(self, debtors: Debtors) -> Any:
        """``pay_<i>``: payments not reversed with ``paid_on`` in ``(as_of - windows[i],
        as_of]``, counted in one pass over the widest window."""
        p = Payment.__table__
        cols = [func.sum(case((p.c.paid_on > self._bound(n), 1), else_=0)).label(f"pay_{i}")
                for i, n in enumerate(self.windows)]
        stmt = select(p.c.debtor_id, *cols).where(
            p.c.tenant_id == self.tenant_id, p.c.status != "reversed",
            p.c.paid_on > self._bound(max(self.windows)), p.c.paid_on <= self.as_of)
        stmt = stmt.where(*only(p.c.debtor_id, debtors))
        return stmt.group_by(p.c.debtor_id).subquery("pay")

    def _contacts(self, debtors: Debtors) -> Any:
        """``ok_<channel>``: 1 when some contact point of the debtor passes the contact
        gate's own checks for that channel (kind per ``CONTACT_KINDS``, consent not
        revoked, channel not in ``opted_out_channels`` nor in ``suppressions``), else 0."""
        cp = ContactPoint.__table__
        cols = [func.max(case((and_(cp.c.kind.in_(CONTACT_KINDS[ch]),
                                    not_(self._opted_out(cp.c.opted_out_channels, ch)),
                                    not_(self._suppressed(cp.c.suppressions, ch))), 1),
                              else_=0)).label(f"ok_{ch}")
                for ch in self.channels]
        stmt = select(cp.c.debtor_id, *cols).where(cp.c.tenant_id == self.tenant_id,
                                                   cp.c.consent != "revoked")
        stmt = stmt.where(*only(cp.c.debtor_id, debtors))
        return stmt.group_by(cp.c.debtor_id).subquery("cp")

    def _suppressed(self, col: Any, channel: str) -> ColumnElement[bool]:
        """``channel`` is a key of the JSON object ``col`` (never NULL)."""
        if self.dialect == "postgresql":
            return func.coalesce(col.op("?", return_type=Boolean)(channel), false())
        return func.json_type(col, f'$."{channel}"').is_not(None)

    def _opted_out(self, col: Any, channel: str) -> ColumnElement[bool]:
        """``channel`` is an element of the JSON array ``col`` (never NULL)."""
        if self.dialect == "postgresql":
            found = col.op("@>", return_type=Boolean)(func.jsonb_build_array(channel))
            return func.coalesce(found, false())
        items = func.json_each(col).table_valued("value").alias("opted")
        return exists().select_from(items).where(items.c.value == channel)

    def _summary(self, debtors: Debtors) -> Any:
        """The per-debtor summary ``b`` of :attr:`balances` (``GROUP BY debtor_id``)."""
        bt = self.balances
        stmt = select(*self._balance_cols).where(bt.c.tenant_id == self.tenant_id)
        stmt = stmt.where(*only(bt.c.debtor_id, debtors))
        return stmt.group_by(bt.c.debtor_id).subquery("b")

    def select(self, outcomes: Sequence[int], debtors: Debtors = None) -> Select[Any]:
        """``(debtor_id, outcome)`` for every debtor (or one): the first matching rule's;
        with ``totals``, then ``has_<i>, out_<i>, ovd_<i>`` per currency (0 when none)."""
        b = self._summary(debtors)
        x = self._extras(debtors)
        whens: list[tuple[Any, Any]] = [(self.expr(rule, b, x), literal_column(str(int(o))))
                                        for rule, o in zip(self.rules, outcomes, strict=True)]
        d = self.d
        cols = [d.c.id.label("debtor_id"), case(*whens).label("outcome")]
        if self.totals:
            cols += [func.coalesce(b.c[f"{k}_{i}"], 0).label(f"{k}_{i}")
                     for i in range(len(self.currencies)) for k in ("has", "out", "ovd")]
        return (select(*cols).select_from(self._from(b, list(x.values()), debtors))
                .where(d.c.tenant_id == self.tenant_id, *only(d.c.id, debtors)))

    def select_pass(self, outcomes: Sequence[int], stage_rules: Sequence[Rule],
                    stage_ids: Sequence[int], debtors: Debtors = None) -> Select[Any]:
        """Stage and segment of every debtor (or some) in one pass over the summary.

        Columns: ``debtor_id``; ``dpd_stage`` (the first of ``stage_rules`` that matches,
        as its id in ``stage_ids``); ``cur_stage`` and ``manual`` (the stored stage, NULL
        when none); ``outcome`` (the segment, NULL without rules) computed with the stage
        the debtor is being given (the manual one, else ``dpd_stage``); ``cur_segment``
        (the stored segment, NULL when none).
        """
        b = self._summary(debtors)
        x = self._extras(debtors)
        dpd = case(*[(self.expr(r, b, x), literal_column(str(int(i))))
                     for r, i in zip(stage_rules, stage_ids, strict=True)])
        pl = self.pl
        given = case((pl.c.stage_manual.is_(True), pl.c.stage_id), else_=dpd)
        whens: list[tuple[Any, Any]] = [(self.expr(rule, b, x, given),
                                         literal_column(str(int(o))))
                                        for rule, o in zip(self.rules, outcomes, strict=True)]
        outcome = case(*whens) if whens else cast(null(), BigInteger)
        d = self.d
        stmt = (select(d.c.id.label("debtor_id"), dpd.label("dpd_stage"),
                       pl.c.stage_id.label("cur_stage"), pl.c.stage_manual.label("manual"),
                       outcome.label("outcome"), pl.c.segment_id.label("cur_segment"))
                .select_from(self._from(b, list(x.values()), debtors, placement=True))
                .where(d.c.tenant_id == self.tenant_id, *only(d.c.id, debtors)))
        return stmt

    def feature_select(self, debtor_id: int) -> Select[Any]:
        """The raw feature row of one debtor (explain evaluates it in Python): the debtor's
        columns, then the summary's and the extra aggregates' (``pay_<i>``, ``ok_<ch>``)."""
        b = self._summary(debtor_id)
        extras = list(self._extras(debtor_id).values())
        d = self.d
        joined = d.outerjoin(b, b.c.debtor_id == d.c.id)
        for x in extras:
            joined = joined.outerjoin(x, x.c.debtor_id == d.c.id)
        return (select(d, *[c for s in (b, *extras) for c in s.c if c.key != "debtor_id"])
                .select_from(joined)
                .where(d.c.tenant_id == self.tenant_id, d.c.id == debtor_id))

    # each returns a boolean expression that is never NULL
    def expr(self, rule: Rule, b: Any, x: dict[str, Any] | None = None,
             stage: Any = None) -> ColumnElement[bool]:
        """``rule`` over the summary ``b`` and the extra aggregates ``x`` (:meth:`_extras`);
        ``stage`` rules compare ``stage`` (a stage id expression; the stored one when None)."""
        x = x or {}
        if isinstance(rule, Group):
            parts = [self.expr(c, b, x, stage) for c in rule.children]
            if rule.op == "not":
                return not_(parts[0])
            if rule.op == "all":
                return and_(true(), *parts) if parts else true()
            return or_(false(), *parts)
        return self._comparison(rule, b, x, self.pl.c.stage_id if stage is None else stage)

    def _comparison(self, c: Comparison, b: Any, x: dict[str, Any],
                    stage: Any) -> ColumnElement[bool]:
        d, op, vals = self.d, c.op, c.values
        if c.feature == "consent":
            assert c.channel is not None
            usable = func.coalesce(x["cp"].c[f"ok_{c.channel}"], 0) == 1
            return usable if (op == "eq") == vals[0] else not_(usable)
        if c.feature == "active_installment_plan":
            active = func.coalesce(x["ar"].c.plans_active, 0) > 0
            return active if (op == "eq") == vals[0] else not_(active)
        idx = self.currencies.index(c.currency) if c.currency else None
        f = c.feature
        if f in ("days_past_due", "days_since_last_payment"):
            if f == "days_since_last_payment":
                day = b.c.last_paid
            else:
                day = b.c[f"oldest_{idx}"] if idx is not None else b.c.oldest_due
            return _by_bounds(op, vals, self._days_ge(day, f == "days_past_due"),
                              self._days_le(day, f == "days_past_due"))
        if f == "tags":
            dt = DebtorTag.__table__
            return exists().where(dt.c.debtor_id == d.c.id, dt.c.tenant_id == self.tenant_id,
                                  dt.c.tag == vals[0])
        if f in ("product", "portfolio"):
            o = Obligation.__table__
            cond = [o.c.debtor_id == d.c.id, o.c.tenant_id == self.tenant_id,
                    o.c.status == "open", o.c.kind != "credit_note", o.c.outstanding_minor > 0]
            if f == "product":
                cond.append(o.c.product.in_(vals))
            else:
                p = Portfolio.__table__
                cond += [p.c.id == o.c.portfolio_id, p.c.code.in_(vals)]
            found = exists().where(*cond)
            return found if op in ("eq", "in") else not_(found)
        col: Any = None
        if f == "overdue_amount":
            col = func.coalesce(b.c[f"ovd_{idx}"], 0)
        elif f == "outstanding_amount":
            col = func.coalesce(b.c[f"out_{idx}"], 0)
        elif f == "open_obligations":
            col = func.coalesce(b.c.open_count, 0)
        elif f == "payments_last_days":
            assert c.days is not None
            col = func.coalesce(x["pay"].c[f"pay_{self.windows.index(c.days)}"], 0)
        elif f in PROMISE_FEATURES:
            col = func.coalesce(
                x["pr"].c[f"brk_{self.promise_windows.index((f, c.days))}"], 0)
        elif f == "aging_bucket":
            col = self._bucket(b.c[f"oldest_{idx}"] if idx is not None else b.c.oldest_due)
        elif f == "stage":
            col, vals = stage, tuple(self.stage_ids.get(v, -1) for v in vals)
        elif f.startswith("attributes."):
            col = self._attribute(f.removeprefix("attributes."), c.attr_type or "str")
        else:
            col = d.c[f]
        return _plain(col, op, vals)

    def _bound(self, n: int) -> date:
        return self.as_of - timedelta(days=n)

    def _days_ge(self, col: Any, clamp: bool) -> Callable[[int], ColumnElement[bool]]:
        def ge(n: int) -> ColumnElement[bool]:
            if clamp and n <= 0:
                return true()
            return and_(col.is_not(None), col <= self._bound(n))
        return ge

    def _days_le(self, col: Any, clamp: bool) -> Callable[[int], ColumnElement[bool]]:
        def le(n: int) -> ColumnElement[bool]:
            if clamp:
                return false() if n < 0 else or_(col.is_(None), col >= self._bound(n))
            return and_(col.is_not(None), col >= self._bound(n))
        return le

    def _bucket(self, col: Any) -> Any:
        b = aging.bucket_bounds(self.as_of)
        return case((col.is_(None), "current"), (col >= self.as_of, "current"),
                    (col >= b["b30"], "1_30"), (col >= b["b60"], "31_60"),
                    (col >= b["b90"], "61_90"), (col >= b["b180"], "91_180"),
                    else_="181_plus")

    def _attribute(self, name: str, attr_type: str) -> Any:
        item = self.d.c.attributes[name]
        if self.dialect == "postgresql":
            json_type = func.jsonb_typeof(item)
            wanted = {"str": ["string"], "num": ["number"], "bool": ["boolean"]}[attr_type]
        else:
            json_type = func.json_type(self.d.c.attributes, f'$."{name}"')
            wanted = {"str": ["text"], "num": ["integer", "real"],
                      "bool": ["true", "false"]}[attr_type]
        value = {"str": item.as_string, "num": item.as_float,
                 "bool": item.as_boolean}[attr_type]()
        return case((json_type.in_(wanted), value))


def _plain(col: Any, op: str, vals: tuple[Any, ...]) -> ColumnElement[bool]:
    nn = col.is_not(None)
    if op == "eq":
        return and_(nn, col == vals[0])
    if op == "ne":
        return not_(and_(nn, col == vals[0]))
    if op == "in":
        return and_(nn, col.in_(vals))
    if op == "not_in":
        return not_(and_(nn, col.in_(vals)))
    if op == "between":
        return and_(nn, col >= vals[0], col <= vals[1])
    compare = {"lt": col < vals[0], "lte": col <= vals[0], "gt": col > vals[0],
               "gte": col >= vals[0]}[op]
    return and_(nn, compare)


def _by_bounds(op: str, vals: tuple[Any, ...], ge: Callable[[int], ColumnElement[bool]],
               le: Callable[[int], ColumnElement[bool]]) -> ColumnElement[bool]:
    """An integer day-count comparison written as ``>= n`` / ``<= n`` date bounds."""
    def eq(n: int) -> ColumnElement[bool]:
        return and_(ge(n), le(n))

    if op == "eq":
        return eq(vals[0])
    if op == "ne":
        return not_(eq(vals[0]))
    if op in ("in", "not_in"):
        any_ = or_(false(), *[eq(v) for v in vals])
        return any_ if op == "in" else not_(any_)
    if op == "between":
        return and_(ge(vals[0]), le(vals[1]))
    n = vals[0]
    return {"lt": lambda: le(n - 1), "lte": lambda: le(n), "gt": lambda: ge(n + 1),
            "gte": lambda: ge(n)}[op]()


# --- evaluation in Python (explain) -------------------------------------------------------

@dataclass
class Features:
    """One debtor's feature values, from :meth:`CompiledRules.feature_select` and a few
    small look-ups (tags, products and portfolios of open obligations)."""

    as_of: date
    debtor: dict[str, Any]
    oldest_due: date | None
    last_paid: date | None
    open_count: int
    by_currency: dict[str, dict[str, Any]]  # currency -> out/ovd/oldest
    tags: set[str]
    products: set[str]
    portfolios: set[str]
    stage: str | None = None
    payments: dict[int, int] = field(default_factory=dict)  # window in days -> count
    consent: dict[str, bool] = field(default_factory=dict)  # channel -> usable
    # (broken_promises | partly_kept_promises | kept_promises, window) -> count
    promises: dict[tuple[str, int | None], int] = field(default_factory=dict)
    active_plan: bool = False  # some installment plan is active

    @staticmethod
    def extras_of(compiled: CompiledRules, row: Any) -> dict[str, Any]:
        """``payments``, ``consent``, ``promises`` and ``active_plan`` (keyword
        arguments of :class:`Features`) from a :meth:`CompiledRules.feature_select` row."""
        return {
            "payments": {n: int(row[f"pay_{i}"] or 0) for i, n in enumerate(compiled.windows)},
            "consent": {ch: bool(row[f"ok_{ch}"]) for ch in compiled.channels},
            "promises": {key: int(row[f"brk_{i}"] or 0)
                         for i, key in enumerate(compiled.promise_windows)},
            "active_plan": bool(row["plans_active"]) if compiled.uses_plans else False,
        }

    def value(self, c: Comparison) -> Any:
        f = c.feature
        if f == "days_past_due":
            oldest = self.by_currency[c.currency]["oldest"] if c.currency else self.oldest_due
            return aging.days_past_due(oldest, self.as_of)
        if f == "days_since_last_payment":
            return None if self.last_paid is None else (self.as_of - self.last_paid).days
        if f == "aging_bucket":
            oldest = self.by_currency[c.currency]["oldest"] if c.currency else self.oldest_due
            return aging.bucket(aging.days_past_due(oldest, self.as_of))
        if f in ("overdue_amount", "outstanding_amount"):
            assert c.currency is not None
            key = "ovd" if f == "overdue_amount" else "out"
            return self.by_currency[c.currency][key]
        if f == "open_obligations":
            return self.open_count
        if f == "payments_last_days":
            assert c.days is not None
            return self.payments[c.days]
        if f == "consent":
            assert c.channel is not None
            return self.consent[c.channel]
        if f in PROMISE_FEATURES:
            return self.promises[(f, c.days)]
        if f == "active_installment_plan":
            return self.active_plan
        if f == "stage":
            return self.stage
        if f == "tags":
            return sorted(self.tags)
        if f == "product":
            return sorted(self.products)
        if f == "portfolio":
            return sorted(self.portfolios)
        if f.startswith("attributes."):
            raw = (self.debtor.get("attributes") or {}).get(f.removeprefix("attributes."))
            return raw if _attr_type(raw) == c.attr_type else None
        return self.debtor.get(f)


def evaluate(rule: Rule, features: Features, path: str) -> tuple[bool, dict[str, Any]]:
    """Evaluate ``rule`` and return (matched, trace); every branch is traced."""
    if isinstance(rule, Group):
        results = [evaluate(child, features, f"{path}.{rule.op}"
                            + ("" if rule.op == "not" else f"[{i}]"))
                   for i, child in enumerate(rule.children)]
        if rule.op == "not":
            matched = not results[0][0]
        elif rule.op == "all":
            matched = all(r for r, _ in results)
        else:
            matched = any(r for r, _ in results)
        return matched, {"path": path, "op": rule.op, "matched": matched,
                         "rules": [t for _, t in results]}
    actual = features.value(rule)
    matched = _matches(rule, actual)
    shown = actual
    if rule.feature in ("overdue_amount", "outstanding_amount") and rule.currency:
        shown = money.from_minor(actual, rule.currency)
    trace: dict[str, Any] = {"path": path, "feature": rule.feature, "op": rule.op,
                             "value": rule.value, "actual": shown, "matched": matched}
    for key in ("currency", "days", "channel"):
        if getattr(rule, key) is not None:
            trace[key] = getattr(rule, key)
    return matched, trace


def _matches(c: Comparison, actual: Any) -> bool:
    op, vals = c.op, c.values
    if c.feature == "tags":
        return vals[0] in actual
    if c.feature in ("product", "portfolio"):
        found = any(v in actual for v in vals)
        return found if op in ("eq", "in") else not found
    if op == "ne":
        return not (actual is not None and actual == vals[0])
    if op == "not_in":
        return not (actual is not None and actual in vals)
    if actual is None:
        return False
    if op == "eq":
        return bool(actual == vals[0])
    if op == "in":
        return actual in vals
    if op == "between":
        return bool(vals[0] <= actual <= vals[1])
    return bool({"lt": actual < vals[0], "lte": actual <= vals[0], "gt": actual > vals[0],
                 "gte": actual >= vals[0]}[op])
