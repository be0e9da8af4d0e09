"""The tenant's offer policy: who may give how much discount without approval.

A policy is a list of rules (:class:`~cartera.offers.schemas.PolicyRule`); each grants a
*role* a maximum discount for debtors of a segment (or any) within a range of days past
due, for some kinds of offer (or all). Roles are OAuth scopes ``role:collector``,
``role:supervisor`` and ``role:manager`` granted to the tenant's clients.

For an offer, the rules that match the debtor (segment, days past due) and the kind give:

* the **requester's limit**: the highest ``max_discount_percent`` among matching rules of a
  role the requesting client holds; up to it the offer is open at once;
* the **approval limit**: the highest among all matching rules, whatever the role; above
  the requester's limit and up to it the offer waits for a *different* client holding a
  role whose limit covers it (``POST /v1/offers/{id}/approve``); beyond it the offer is
  refused (422 ``offer_beyond_limits``).

Without a policy of its own a tenant has :data:`DEFAULT_RULES`: collectors 10 %,
supervisors 30 %, managers 50 %, offers open at most 30 days, promises at most 30 days
ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.offers import schemas
from cartera.offers.models import OfferPolicy

ROLE_SCOPE_PREFIX = "role:"
DEFAULT_RULES = [
    schemas.PolicyRule(role="collector", max_discount_percent="10"),
    schemas.PolicyRule(role="supervisor", max_discount_percent="30"),
    schemas.PolicyRule(role="manager", max_discount_percent="50"),
]
DEFAULT_VALIDITY_DAYS = 30
DEFAULT_PROMISE_HORIZON_DAYS = 30


def bps(percent: str) -> int:
    """``"27.5"`` -> 2750 basis points."""
    return int(Decimal(percent) * 100)


def percent(value_bps: int) -> str:
    """2750 -> ``"27.5"``; 1000 -> ``"10"``."""
    text = f"{Decimal(value_bps) / 100:.2f}"
    return text.rstrip("0").rstrip(".")


def roles_of(scopes: frozenset[str] | set[str]) -> set[str]:
    return {s.removeprefix(ROLE_SCOPE_PREFIX) for s in scopes if s.startswith(ROLE_SCOPE_PREFIX)}


@dataclass(frozen=True)
class Policy:
    rules: list[schemas.PolicyRule]
    max_validity_days: int
    max_promise_horizon_days: int
    row: OfferPolicy | None = None


async def load(session: AsyncSession, tenant_id: int) -> Policy:
    row = await session.get(OfferPolicy, tenant_id)
    if row is None:
        return Policy(DEFAULT_RULES, DEFAULT_VALIDITY_DAYS, DEFAULT_PROMISE_HORIZON_DAYS)
    return Policy(msgspec.convert(row.rules, list[schemas.PolicyRule]), row.max_validity_days,
                  row.max_promise_horizon_days, row)


def out(policy: Policy) -> schemas.OfferPolicyOut:
    return schemas.OfferPolicyOut(
        rules=policy.rules, max_validity_days=policy.max_validity_days,
        max_promise_horizon_days=policy.max_promise_horizon_days, default=policy.row is None,
        updated_by=policy.row.updated_by if policy.row else None,
        updated_at=policy.row.updated_at if policy.row else None)


def _matches(rule: schemas.PolicyRule, kind: str, segment_id: int | None, dpd: int) -> bool:
    return ((rule.segment_id is None or rule.segment_id == segment_id)
            and rule.min_days_past_due <= dpd
            and (rule.max_days_past_due is None or dpd <= rule.max_days_past_due)
            and (rule.kinds is None or kind in rule.kinds))


def limit_for(policy: Policy, roles: set[str] | None, kind: str, segment_id: int | None,
              dpd: int) -> int:
    """The highest discount (basis points) the matching rules grant ``roles`` (any role when
    None); 0 when none matches."""
    return max((bps(r.max_discount_percent) for r in policy.rules
                if _matches(r, kind, segment_id, dpd) and (roles is None or r.role in roles)),
               default=0)
