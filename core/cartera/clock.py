"""Today's date in a given time zone (one place to freeze in tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def now() -> datetime:
    return datetime.now(UTC)


def today_in(tz: str) -> date:
    return now().astimezone(ZoneInfo(tz)).date()
