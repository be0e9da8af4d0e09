"""Reading an import file into validated, staged rows, one chunk at a time.

Everything here is synchronous and pure (no database): the pipeline runs it in a worker
thread so parsing the next chunk overlaps with loading the previous one. A row is decoded
with msgspec into a typed struct, then checked with the same rules as the API
(:mod:`cartera.portfolio.validation`, :func:`cartera.money.to_minor`). A row that breaks
any rule becomes one :class:`RowError` and contributes nothing to the chunk.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from cartera import money
from cartera.errors import Invalid
from cartera.portfolio import validation
from cartera.types import (
    AttributeValue,
    Channel,
    Consent,
    ContactKind,
    ContactOrigin,
    CountryCode,
    DebtorKind,
    ExternalRef,
    Name,
    ObligationKind,
    ObligationStatus,
    ShortText,
    Tag,
)

CHUNK_ROWS = 50_000
FORMATS = ("ndjson", "csv")

Text16 = Annotated[str, Meta(min_length=1, max_length=16)]
Text32 = Annotated[str, Meta(max_length=32)]
Text64 = Annotated[str, Meta(max_length=64)]
Text128 = Annotated[str, Meta(max_length=128)]
Text200 = Annotated[str, Meta(max_length=200)]
RiskScore = Annotated[int, Meta(ge=0, le=1000)]


class ContactRow(Struct, forbid_unknown_fields=True):
    kind: ContactKind
    value: Annotated[str, Meta(min_length=1, max_length=500)]
    label: Text64 | None = None
    consent: Consent = "unknown"
    opted_out_channels: list[Channel] = []
    origin: ContactOrigin = "debtor_provided"
    preferred: bool = False


class DebtorRow(Struct, tag_field="type", tag="debtor", forbid_unknown_fields=True):
    external_ref: ExternalRef
    name: Name
    country: CountryCode
    kind: DebtorKind = "person"
    national_id: Text64 | None = None
    subdivision: Text16 | None = None
    timezone: Text64 | None = None
    zone: Text128 | None = None
    risk_score: RiskScore | None = None
    tags: list[Tag] = []
    attributes: dict[str, AttributeValue] = {}
    contact_points: list[ContactRow] = []


class ObligationRow(Struct, tag_field="type", tag="obligation", forbid_unknown_fields=True):
    external_ref: ExternalRef
    debtor_external_ref: ExternalRef
    kind: ObligationKind
    currency: str
    original_amount: str
    due_date: date
    outstanding_amount: str | None = None
    portfolio_code: ShortText | None = None
    product: Text64 | None = None
    issue_date: date | None = None
    status: ObligationStatus = "open"


class PaymentRow(Struct, tag_field="type", tag="payment", forbid_unknown_fields=True):
    external_ref: ExternalRef
    debtor_external_ref: ExternalRef
    currency: str
    amount: str
    paid_on: date
    method: Text32 | None = None
    reference: Text200 | None = None


Row = DebtorRow | ObligationRow | PaymentRow
CONTACT_COLUMNS = ("phone", "email", "whatsapp")
ATTRIBUTE_PREFIX = "attributes."
CSV_COLUMNS = frozenset(
    {"type", *CONTACT_COLUMNS}
    | {f for t in (DebtorRow, ObligationRow, PaymentRow) for f in t.__struct_fields__}
) - {"contact_points"}


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    code: str
    reason: str


@dataclass
class Chunk:
    """Validated rows of one stretch of the file, as tuples in staging-column order (less the
    leading staging key, which the pipeline adds).

    Within a chunk a later row with the same external reference replaces an earlier one.
    """

    rows: int = 0
    last_line: int = 0
    debtors: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    contacts: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    obligations: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    payments: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)


class FileError(ValueError):
    """The file as a whole cannot be read (a CSV without a usable header)."""


# --- decoding ----------------------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")


def _decode_error(line: int, exc: msgspec.MsgspecError) -> RowError:
    """Turn msgspec's message ("Expected `str`, got `int` - at `$.name`") into a row error."""
    match = _AT.match(str(exc))
    assert match is not None
    message, path = match["msg"], (match["path"] or "").lstrip(".")
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    if not isinstance(exc, msgspec.ValidationError):
        code = "malformed_json"
    elif path == "type":
        code, message = "unknown_type", f"{message}: type must be debtor, obligation or payment"
    elif "missing required field" in message:
        code = "missing_field"
    elif "unknown field" in message:
        code = "unknown_field"
    elif "date" in message:
        code, message = "invalid_date", f"{message} (expected YYYY-MM-DD)"
    elif message.startswith("Expected `"):
        code = "wrong_type"
    else:
        code = "invalid_value"
    return RowError(line, path or None, code, message)


_NDJSON = msgspec.json.Decoder(Row)


def _ndjson_rows(path: str) -> Iterator[tuple[int, Row | RowError]]:
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield line_no, _NDJSON.decode(raw)
            except msgspec.MsgspecError as exc:
                yield line_no, _decode_error(line_no, exc)


def check_csv_header(header: list[str]) -> None:
    """Raise :class:`FileError` unless the header names a ``type`` column and known columns."""
    if "type" not in header:
        raise FileError("the CSV header has no 'type' column")
    unknown = [c for c in header if c not in CSV_COLUMNS and not c.startswith(ATTRIBUTE_PREFIX)]
    if unknown:
        raise FileError(f"unknown CSV column {unknown[0]!r}")


def _csv_record(header: list[str], values: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    contacts: list[dict[str, str]] = []
    for name, value in zip(header, values, strict=False):
        if value == "":
            continue
        if name in CONTACT_COLUMNS:
            contacts.append({"kind": name, "value": value})
        elif name == "tags":
            record["tags"] = [t.strip() for t in value.split(";") if t.strip()]
        elif name.startswith(ATTRIBUTE_PREFIX):
            record.setdefault("attributes", {})[name[len(ATTRIBUTE_PREFIX):]] = value
        else:
            record[name] = value
    if contacts:
        record["contact_points"] = contacts
    return record


def _csv_rows(path: str) -> Iterator[tuple[int, Row | RowError]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        check_csv_header(header)
        start = reader.line_num + 1
        for values in reader:
            line_no, start = start, reader.line_num + 1
            if not any(values):
                continue
            if len(values) > len(header):
                yield line_no, RowError(line_no, None, "too_many_columns",
                                        f"{len(values)} cells for {len(header)} columns")
                continue
            record = _csv_record(header, values)
            try:
                yield line_no, msgspec.convert(record, Row, strict=False)
            except msgspec.ValidationError as exc:
                yield line_no, _csv_error(_decode_error(line_no, exc), record)


def _csv_error(error: RowError, record: dict[str, Any]) -> RowError:
    """Name the CSV column (``phone``) rather than the nested path (``contact_points[0]``)."""
    match = re.match(r"contact_points\[(\d+)\]", error.field or "")
    if match and "contact_points" in record:
        column = record["contact_points"][int(match[1])]["kind"]
        return RowError(error.line, column, error.code, error.reason)
    return error


# --- rules -------------------------------------------------------------------------------

_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def minor(value: str, currency: str, param: str) -> int:
    """An exact amount in minor units; the rules and messages of :func:`money.to_minor`.

    A plain non-negative amount within the currency's precision (nearly every row) is
    converted with integer arithmetic; anything else goes through :func:`money.to_minor`,
    which accepts or refuses it with the reason.
    """
    if not _PLAIN_DECIMAL.match(value):
        raise Invalid(f"{value!r} is not a plain decimal number", code="invalid_amount",
                      param=param)
    whole, _, fraction = value.partition(".")
    digits = money.exponent(currency)
    if whole[0] != "-" and len(fraction.rstrip("0")) <= digits:
        scale: int = 10 ** digits
        return int(whole) * scale + int(fraction[:digits].ljust(digits, "0") or 0)
    try:
        return money.to_minor(value, currency)
    except money.MoneyError as exc:
        raise Invalid(str(exc), code=exc.code, param=param) from None


def _currency(value: str) -> str:
    if not money.is_currency(value):
        raise Invalid(f"{value!r} is not an ISO 4217 currency", code="unknown_currency",
                      param="currency")
    return value


@lru_cache(maxsize=4096)
def _place(country: str, subdivision: str | None, tz: str | None) -> tuple[str, str | None, str]:
    code = validation.country(country)
    sub = validation.subdivision(subdivision, code)
    return code, sub, validation.timezone(tz, code, sub)


def _add_debtor(chunk: Chunk, line: int, row: DebtorRow) -> None:
    validation.name(row.name)
    country, subdivision, tz = _place(row.country, row.subdivision, row.timezone)
    contacts: dict[tuple[str, str], tuple[Any, ...]] = {}
    for i, cp in enumerate(row.contact_points):
        value = validation.contact_value(cp.kind, cp.value, country, f"contact_points[{i}].value")
        contacts[(cp.kind, value)] = (
            row.external_ref, cp.kind, value, cp.label, cp.consent,
            msgspec.json.encode(sorted(set(cp.opted_out_channels))).decode(), cp.origin,
            cp.preferred)
    chunk.debtors[row.external_ref] = (
        line, row.external_ref, row.kind, row.name, row.national_id, country, subdivision,
        tz, row.zone, row.risk_score, msgspec.json.encode(row.attributes, order="sorted").decode())
    chunk.tags[row.external_ref] = sorted(set(row.tags))
    chunk.contacts[row.external_ref] = list(contacts.values())


def _add_obligation(chunk: Chunk, line: int, row: ObligationRow) -> None:
    currency = _currency(row.currency)
    original = minor(row.original_amount, currency, "original_amount")
    outstanding = (original if row.outstanding_amount is None
                   else minor(row.outstanding_amount, currency, "outstanding_amount"))
    if outstanding > original:
        raise Invalid("outstanding_amount cannot exceed original_amount",
                      code="outstanding_exceeds_original", param="outstanding_amount")
    if row.issue_date is not None and row.issue_date > row.due_date:
        raise Invalid("issue_date is after due_date", code="issue_after_due", param="issue_date")
    # 'paid' is derived from allocations, as through the API: load it as open.
    status = "open" if row.status == "paid" else row.status
    chunk.obligations[row.external_ref] = (
        line, row.external_ref, row.debtor_external_ref, row.portfolio_code, row.kind,
        row.product, currency, original, original - outstanding,
        row.issue_date.isoformat() if row.issue_date else None, row.due_date.isoformat(), status)


def _add_payment(chunk: Chunk, line: int, row: PaymentRow) -> None:
    currency = _currency(row.currency)
    amount = minor(row.amount, currency, "amount")
    if amount <= 0:
        raise Invalid("amount must be positive", code="non_positive_amount", param="amount")
    chunk.payments[row.external_ref] = (
        line, row.external_ref, row.debtor_external_ref, currency, amount,
        row.paid_on.isoformat(), row.method, row.reference)


def _add(chunk: Chunk, line: int, row: Row) -> None:
    if isinstance(row, DebtorRow):
        _add_debtor(chunk, line, row)
    elif isinstance(row, ObligationRow):
        _add_obligation(chunk, line, row)
    else:
        _add_payment(chunk, line, row)


def chunks(path: str, fmt: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Validated chunks of at most ``chunk_rows`` rows; never holds more of the file."""
    source = _ndjson_rows(path) if fmt == "ndjson" else _csv_rows(path)
    chunk = Chunk()
    for line, item in source:
        chunk.rows += 1
        chunk.last_line = line
        if isinstance(item, RowError):
            chunk.errors.append(item)
        else:
            try:
                _add(chunk, line, item)
            except Invalid as exc:
                chunk.errors.append(RowError(line, exc.param, exc.code, exc.detail))
        if chunk.rows >= chunk_rows:
            yield chunk
            chunk = Chunk()
    if chunk.rows:
        yield chunk


def count_rows(path: str, fmt: str) -> int:
    """Number of non-empty lines (less the CSV header): the progress total, read in blocks."""
    count = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n") - block.count(b"\n\n")
            last = block[-1:]
    if last != b"\n":
        count += 1
    return max(count - (1 if fmt == "csv" else 0), 0)
