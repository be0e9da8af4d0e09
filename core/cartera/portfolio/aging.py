"""Aging buckets and days past due, from dates (never from a stored, staling number)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal, get_args

BucketName = Literal["current", "1_30", "31_60", "61_90", "91_180", "181_plus"]
"""The one vocabulary of aging buckets, in reports, balances and segment rules."""
BUCKETS: tuple[tuple[BucketName, int | None, int | None], ...] = (
    ("current", None, 0),
    ("1_30", 1, 30),
    ("31_60", 31, 60),
    ("61_90", 61, 90),
    ("91_180", 91, 180),
    ("181_plus", 181, None),
)
BUCKET_NAMES = tuple(name for name, _, _ in BUCKETS)
assert get_args(BucketName) == BUCKET_NAMES


def days_past_due(oldest_unpaid_due: date | None, as_of: date) -> int:
    if oldest_unpaid_due is None or oldest_unpaid_due >= as_of:
        return 0
    return (as_of - oldest_unpaid_due).days


def bucket(dpd: int) -> BucketName:
    for name, low, high in BUCKETS:
        if (low is None or dpd >= low) and (high is None or dpd <= high):
            return name
    raise AssertionError("buckets cover every day count")


def bucket_case_sql(column: str) -> str:
    """A SQL CASE that buckets ``column`` (a due date) against date bounds.

    Bind ``as_of`` and the :func:`bucket_bounds` parameters; comparing dates needs no
    dialect-specific date arithmetic, and a past-due item is one due strictly before as_of.
    """
    return (
        f"CASE WHEN {column} >= :as_of THEN 'current' "
        f"WHEN {column} >= :b30 THEN '1_30' WHEN {column} >= :b60 THEN '31_60' "
        f"WHEN {column} >= :b90 THEN '61_90' WHEN {column} >= :b180 THEN '91_180' "
        "ELSE '181_plus' END"
    )


def bucket_bounds(as_of: date) -> dict[str, date]:
    return {f"b{n}": as_of - timedelta(days=n) for n in (30, 60, 90, 180)}
