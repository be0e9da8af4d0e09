"""Pieces both SAP connectors share: cursors, exact JSON, money, dates, OData literals, errors.

Nothing here knows Business One or S/4HANA field names; the connectors map rows.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import httpx
from cartera_sdk import ErpRowError, Money, Page
from cartera_sdk.errors import PermanentError, ProviderError, RateLimitedError, RetryableError
from cartera_sdk.http import parse_retry_after
from cartera_sdk.money import minor_units

__all__ = [
    "CurrencyTable",
    "RowProblem",
    "decode_cursor",
    "encode_cursor",
    "exact_json",
    "make_page",
    "map_rows",
    "odata_date_literal",
    "odata_string",
    "parse_day",
    "parse_epoch_date",
    "provider_error",
    "start_state",
    "transport_error",
]

T = TypeVar("T")
_ISO = re.compile(r"^[A-Z]{3}$")
_EPOCH = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


class RowProblem(ValueError):
    """A row cannot be mapped; ``code`` becomes the :class:`ErpRowError` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode_cursor(state: Mapping[str, Any]) -> str:
    """An opaque, URL-safe cursor for ``state`` (JSON, compact, base64url without padding)."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, kind: str) -> dict[str, Any]:
    """The state in ``cursor``; a cursor of another stream or connector is a permanent error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise PermanentError("bad_cursor", "the cursor is not one this connector issued") from exc
    if not isinstance(state, dict) or state.get("k") != kind:
        raise PermanentError("bad_cursor", f"the cursor is not a {kind} cursor")
    return state


def exact_json(response: httpx.Response) -> Any:
    """The body as JSON with every non-integer number a ``Decimal`` (never a float)."""
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise RetryableError("bad_response", "the ERP answered with malformed JSON",
                             status_code=response.status_code) from exc


def odata_string(value: str) -> str:
    """An OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def odata_date_literal(day: date) -> str:
    """An OData v2 ``datetime'...'`` literal for midnight of ``day``."""
    return f"datetime'{day.isoformat()}T00:00:00'"


def parse_day(value: Any, field: str) -> date:
    """A date from ``YYYY-MM-DD`` (optionally followed by a time, as some B1 versions send)."""
    if not isinstance(value, str) or len(value) < 10:
        raise RowProblem("malformed_row", f"{field} is not a date: {value!r}")
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise RowProblem("malformed_row", f"{field} is not a date: {value!r}") from exc


def parse_epoch_date(value: Any, field: str) -> date | None:
    """An OData v2 ``/Date(<ms>)/`` literal as a UTC date; ``None`` stays ``None``."""
    if value is None:
        return None
    match = _EPOCH.match(value) if isinstance(value, str) else None
    if match is None:
        raise RowProblem("malformed_row", f"{field} is not a /Date(ms)/ literal: {value!r}")
    return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC).date()


class CurrencyTable:
    """Maps ERP currency codes to ISO 4217 and checks them.

    ``aliases`` maps codes the ERP uses that are not ISO (Business One lets a company call
    pesos ``$``) to ISO codes; ``accepted`` (when not empty) is the closed list of ISO
    codes the tenant works in. Anything else is an ``unknown_currency`` row problem.
    """

    def __init__(self, aliases: Mapping[str, str], accepted: list[str]) -> None:
        self._aliases = dict(aliases)
        self._reverse = {iso: code for code, iso in self._aliases.items()}
        self._accepted = frozenset(accepted)

    def iso(self, code: Any) -> str:
        """The ISO code for an ERP code, or a ``RowProblem``."""
        if not isinstance(code, str):
            raise RowProblem("malformed_row", f"currency is not a string: {code!r}")
        iso = self._aliases.get(code, code.strip())
        if not _ISO.match(iso) or (self._accepted and iso not in self._accepted):
            raise RowProblem("unknown_currency", f"currency {code!r} is not a known currency")
        return iso

    def erp_code(self, iso: str) -> str:
        """The ERP's code for an ISO currency (the reverse alias, or the ISO code itself)."""
        return self._reverse.get(iso, iso)

    def money(self, value: Any, currency: str, field: str) -> Money:
        """Exact ``Money`` from a JSON number (``Decimal``/``int``) or a decimal string.

        Trailing zeros beyond the currency's minor units are fine (S/4 sends ``"1190.000"``
        for EUR); a real fraction of a minor unit or a negative amount is a ``bad_amount``.
        """
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise RowProblem("bad_amount", f"{field} is not a decimal amount: {value!r}")
        try:
            amount = Decimal(value)
            Money(amount, currency)  # validates finiteness and minor units
        except (InvalidOperation, ValueError) as exc:
            raise RowProblem("bad_amount", f"{field}: {exc}") from exc
        return Money(amount.quantize(Decimal(1).scaleb(-minor_units(currency))), currency)


def transport_error(exc: httpx.TransportError) -> RetryableError:
    """A connection failure or timeout: retryable, naming only the exception type."""
    return RetryableError("transport", type(exc).__name__)


def provider_error(response: httpx.Response, message: str) -> ProviderError:
    """The classified failure for a non-success ``response`` (``message`` from its body)."""
    status = response.status_code
    if status == 429:
        return RateLimitedError(
            "rate_limited", message, status_code=status,
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
        )  # fmt: skip
    if status >= 500:
        return RetryableError(f"http_{status}", message, status_code=status)
    return PermanentError(f"http_{status}", message, status_code=status)


def start_state(cursor: str | None, kind: str) -> dict[str, Any]:
    """The paging state of a pull: a fresh full run for ``None``, else the cursor's state."""
    if cursor is None:
        return {"k": kind, "m": "full", "start": True}
    return decode_cursor(cursor, kind=kind)


def map_rows(
    rows: list[dict[str, Any]], key_field: str, mapper: Callable[[dict[str, Any]], Iterable[T]]
) -> tuple[list[T], list[ErpRowError]]:
    """Map every row; a row that fails becomes an :class:`ErpRowError`, the rest still count."""
    items: list[T] = []
    errors: list[ErpRowError] = []
    for row in rows:
        try:
            items.extend(mapper(row))
        except RowProblem as problem:
            errors.append(_row_error(row, key_field, problem.code, str(problem)))
        except (ValueError, TypeError) as exc:  # a contract check of the SDK structs
            errors.append(_row_error(row, key_field, "malformed_row", str(exc)))
    return items, errors


def _row_error(row: dict[str, Any], key_field: str, code: str, message: str) -> ErpRowError:
    key = row.get(key_field)
    return ErpRowError(row_key=str(key) if isinstance(key, int | str) else None, code=code,
                       message=message)  # fmt: skip


def make_page(
    kind: str, state: dict[str, Any], items: list[T], errors: list[ErpRowError], more: bool
) -> Page[T]:
    """A page that continues from ``state``, or the run's last page with its delta cursor.

    ``state["w"]`` holds the watermarks captured when the run started; the delta cursor
    starts the next run from them.
    """
    if more:
        return Page(items=items, next_cursor=encode_cursor(state), errors=errors)
    delta = {"k": kind, "m": "delta", "start": True, "since": state.get("w", {})}
    return Page(items=items, delta_cursor=encode_cursor(delta), errors=errors)
