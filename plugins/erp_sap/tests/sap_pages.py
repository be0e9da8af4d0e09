"""Test helper: drive a pull to the end of its run, as the host's sync would."""

from __future__ import annotations

from typing import Any

from cartera_sdk import Page
from cartera_sdk.testkit import run


def pull_run(pull: Any, ctx: Any, cursor: str | None = None, limit: int = 2) -> list[Page[Any]]:
    """Every page from ``cursor`` to the page without ``next_cursor``."""
    pages = []
    while True:
        page = run(pull(cursor, limit, ctx))
        pages.append(page)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def external_ids(pages: list[Page[Any]]) -> list[str]:
    """The ``external_id`` of every row, in order."""
    return [item.external_id for page in pages for item in page.items]
