"""API types of the segmentation domain."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Struct

from cartera.messaging.gate import CONTACT_KINDS

RULE_DESCRIPTION = (
    "A rule tree: {\"all\": [...]}, {\"any\": [...]}, {\"not\": {...}} or "
    "{\"feature\": ..., \"op\": ..., \"value\": ..., \"currency\": ...}. "
    "{\"all\": []} matches every debtor. Amount features need a currency; "
    "payments_last_days needs days (1-3650), e.g. {\"feature\": \"payments_last_days\", "
    "\"days\": 30, \"op\": \"gte\", \"value\": 1}; consent needs a channel "
    f"({', '.join(CONTACT_KINDS)}) and compares with true or false; broken_promises counts "
    "the debtor's broken promises to pay, with optional days (1-3650) for those whose "
    "promised date is in the days before the evaluation date; partly_kept_promises and "
    "kept_promises count those partly and fully kept the same way; active_installment_plan "
    "compares with true or false.")

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$",
                                   examples=["early_1_30"])]


class SegmentIn(Struct, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    rule: Annotated[dict[str, Any], msgspec.Meta(
        description=RULE_DESCRIPTION,
        examples=[{"all": [{"feature": "days_past_due", "op": "between", "value": [1, 30]},
                           {"feature": "overdue_amount", "op": "gte", "value": "500.00",
                            "currency": "PEN"}]}])]
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class RuleSetIn(Struct, forbid_unknown_fields=True):
    """The whole ordered rule set; the last segment must be a catch-all ({"all": []})."""

    segments: Annotated[list[SegmentIn], msgspec.Meta(min_length=1, max_length=200)]


class SegmentOut(Struct):
    id: int
    code: str
    name: str
    description: str | None
    position: int
    rule: dict[str, Any]
    version: int
    debtors: int


class RuleSetOut(Struct):
    version: int
    segments: list[SegmentOut]


class RunOut(Struct):
    id: int
    job_id: int | None
    status: str
    as_of: date | None
    ruleset_version: int | None
    debtors: int
    moves: int
    debtors_per_segment: dict[str, Any]
    duration_ms: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunCreate(Struct, forbid_unknown_fields=True):
    as_of: date | None = None


class SegmentExplanation(Struct):
    code: str
    position: int
    matched: bool
    trace: dict[str, Any]


class ExplainOut(Struct):
    debtor_id: int
    as_of: date
    segment: str | None
    """The segment the rules give now (the first whose rule matched)."""
    current_segment: str | None
    """The stored membership (from the last evaluation)."""
    evaluated: list[SegmentExplanation]
    """Every segment up to and including the matching one, in order, with its rule trace."""


class CurrencyTotals(Struct):
    currency: str
    debtors: int
    outstanding_amount: str
    overdue_amount: str


class PreviewSegment(Struct):
    code: str
    debtors: int
    balances: list[CurrencyTotals]


class PreviewMove(Struct):
    from_segment: str | None
    to_segment: str
    debtors: int


class PreviewOut(Struct):
    as_of: date
    segments: list[PreviewSegment]
    moves: list[PreviewMove]


class MoveOut(Struct):
    """A debtor entering ``to_segment`` (from ``from_segment``, null on their first)."""

    id: int
    debtor_id: int
    from_segment: str | None
    to_segment: str | None
    run_id: int | None
    at: datetime
    left_at: datetime | None
    """When the debtor left ``to_segment`` (their next move); null while still in it."""


# --- stages -------------------------------------------------------------------------------

Days = Annotated[int, msgspec.Meta(ge=0, le=36_500)]


class StageIn(Struct, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    min_dpd: Days
    max_dpd: Days | None = None
    """Inclusive; null on the last stage only (open-ended)."""


class StagesIn(Struct, forbid_unknown_fields=True):
    """The whole ordered set (escalation order). Day ranges ascend with it, are contiguous
    and cover 0..∞: the first starts at 0, each starts the day after the previous ends, and
    only the last is open-ended (``max_dpd`` null)."""

    stages: Annotated[list[StageIn], msgspec.Meta(min_length=1, max_length=20)]


class StageOut(Struct):
    id: int
    code: str
    name: str
    position: int
    min_dpd: int
    max_dpd: int | None
    debtors: int


class StagesOut(Struct):
    stages: list[StageOut]


class StageSet(Struct, forbid_unknown_fields=True):
    stage_code: Code
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500,
                                        examples=["refused three payment offers"])]


class DebtorStageOut(Struct):
    debtor_id: int
    as_of: date
    stage: str | None
    stage_name: str | None
    manual: bool
    """Set by hand: it sticks until released (DELETE)."""
    reason: str | None
    set_by: str | None
    set_at: datetime | None
    """When the stored stage was set; null when the debtor has not been given this stage
    yet (it is the one ``as_of`` gives; the next evaluation stores it)."""
    days_past_due: int
    dpd_stage: str
    """The stage days past due give (the current one unless set by hand)."""
    dpd_min: int
    dpd_max: int | None
    why: str


class StageMoveOut(Struct):
    id: int
    debtor_id: int
    from_stage: str | None
    to_stage: str | None
    at: datetime
    manual: bool
    reason: str | None
    actor: str | None


# --- amount brackets ----------------------------------------------------------------------

class BracketOut(Struct):
    low: str
    """Inclusive lower bound."""
    high: str | None
    """Exclusive upper bound; null on the last bracket."""
    debtors: int
    share: float
    """Share of the debtors counted (0..1)."""


class BracketsOut(Struct):
    feature: str
    currency: str
    requested: int
    boundaries: list[str]
    """Suggested boundaries (nice round figures), ascending; duplicates after rounding are
    merged, so there may be fewer brackets than requested."""
    brackets: list[BracketOut]
    debtors: int
    """Debtors with a positive amount in the currency (those the brackets divide)."""
    without_amount: int
    """Debtors of the tenant with no such amount (left out)."""
