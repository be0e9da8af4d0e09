"""API types of the segmentation domain."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Struct

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$",
                                   examples=["early_1_30"])]


class SegmentIn(Struct, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    rule: Annotated[dict[str, Any], msgspec.Meta(
        description="A rule tree: {\"all\": [...]}, {\"any\": [...]}, {\"not\": {...}} or "
                    "{\"feature\": ..., \"op\": ..., \"value\": ..., \"currency\": ...}. "
                    "{\"all\": []} matches every debtor.",
        examples=[{"all": [{"feature": "days_past_due", "op": "between", "value": [1, 30]},
                           {"feature": "overdue_amount", "op": "gte", "value": "500.00",
                            "currency": "PEN"}]}])]
    description: str | None = None


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
    id: int
    debtor_id: int
    from_segment: str | None
    to_segment: str | None
    run_id: int | None
    at: datetime
