"""Reading an import file into validated, staged rows, one chunk at a time.

Everything here is synchronous and pure (no database): the pipeline runs it in a worker
thread so parsing the next chunk overlaps with loading the previous one. A row is decoded
with msgspec into a typed struct, then checked with the same rules as the API
(:mod:`cartera.portfolio.validation`, :func:`cartera.money.to_minor`).

* A row that breaks a rule of a required field (or one whose value decides money) becomes
  one :class:`RowError` and contributes nothing to the chunk.
* An invalid *optional* field (:data:`OPTIONAL_FIELDS`: a phone, a tag, a subdivision...) is
  dropped with a warning (a :class:`RowError` of severity ``warning``), and the row kept.
* A value with a NUL character, or bytes that are not text in the file's encoding, is a
  row error at its line and field; the other rows are read on.

How a file is read (:class:`ReadOptions`: encoding, CSV delimiter and decimal mark) is
given, or detected by :func:`detect` when the file arrives: UTF-8 if the first
:data:`LOOKAHEAD_BYTES` are valid UTF-8, else cp1252; the delimiter that occurs most in the
CSV header; a decimal comma when cells are separated by ``;``. CSV header names match
case-insensitively, trimmed.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from cartera import money
from cartera.crypto import pii_cipher
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
ENCODINGS = ("utf-8", "cp1252", "latin-1")
DELIMITERS = (",", ";", "\t", "|")
DECIMAL_MARKS = (".", ",")
LOOKAHEAD_BYTES = 1 << 20
"""How much of a file decides its encoding when none is given."""

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
AMOUNT_COLUMNS = ("original_amount", "outstanding_amount", "amount")
CSV_COLUMNS = frozenset(
    {"type", *CONTACT_COLUMNS}
    | {f for t in (DebtorRow, ObligationRow, PaymentRow) for f in t.__struct_fields__}
) - {"contact_points"}
OPTIONAL_FIELDS: dict[str, frozenset[str]] = {
    "debtor": frozenset({"national_id", "subdivision", "timezone", "zone", "risk_score",
                         "tags", "attributes", "contact_points"}),
    "obligation": frozenset({"product", "issue_date"}),
    "payment": frozenset({"method", "reference"}),
}
"""Per row type, the fields whose invalid value is dropped with a warning rather than
rejecting the row: none of them identifies a record or decides an amount. In a list or an
object (``contact_points``, ``tags``, ``attributes``) only the bad item is dropped."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    code: str
    reason: str
    severity: str = "error"
    """``error``: the row was rejected; ``warning``: the field was dropped, the row kept."""


@dataclass(frozen=True)
class ReadOptions:
    """How a file's bytes are read. ``delimiter`` and ``decimal_mark`` apply to CSV."""

    encoding: str = "utf-8"
    delimiter: str = ","
    decimal_mark: str = "."


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
    warnings: list[RowError] = field(default_factory=list)


class FileError(ValueError):
    """The file as a whole cannot be read (a CSV without a usable header)."""


# --- detecting ---------------------------------------------------------------------------

def _codec(encoding: str) -> str:
    """The Python codec for ``encoding``: UTF-8 skips a byte-order mark."""
    return "utf-8-sig" if encoding == "utf-8" else encoding


def detect_encoding(path: str) -> str:
    """``utf-8`` if the file's first :data:`LOOKAHEAD_BYTES` are valid UTF-8, else
    ``cp1252`` (what Latin-American ERPs export; Latin-1 text reads the same). A later line
    that is not valid UTF-8 is then a row error at that line."""
    with open(path, "rb") as f:
        head = f.read(LOOKAHEAD_BYTES)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < LOOKAHEAD_BYTES)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def detect_delimiter(header_line: str) -> str:
    """The one of :data:`DELIMITERS` the header line holds most of (``,`` on a tie)."""
    return max(DELIMITERS, key=header_line.count)


def column_name(cell: str) -> str:
    """A CSV header cell as a column name: trimmed, lower case (but for the key of an
    ``attributes.<key>`` column, kept as written)."""
    name = cell.strip()
    if name[:len(ATTRIBUTE_PREFIX)].lower() == ATTRIBUTE_PREFIX:
        return ATTRIBUTE_PREFIX + name[len(ATTRIBUTE_PREFIX):]
    return name.lower()


def detect(path: str, fmt: str, encoding: str | None = None, delimiter: str | None = None,
           decimal_mark: str | None = None) -> ReadOptions:
    """How to read the file at ``path``: the options given, the others detected (see the
    module doc). A CSV header is checked too (:class:`FileError`)."""
    encoding = encoding or detect_encoding(path)
    if fmt != "csv":
        return ReadOptions(encoding)
    with open(path, newline="", encoding=_codec(encoding), errors="replace") as f:
        line = f.readline(LOOKAHEAD_BYTES)
    delimiter = delimiter or detect_delimiter(line)
    header = [column_name(c) for c in next(csv.reader([line], delimiter=delimiter), [])]
    check_csv_header(header, delimiter)
    return ReadOptions(encoding, delimiter, decimal_mark or ("," if delimiter == ";" else "."))


# --- decoding ----------------------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")


def _decode_error(line: int, exc: msgspec.MsgspecError, prefix: str = "") -> RowError:
    """Turn msgspec's message ("Expected `str`, got `int` - at `$.name`") into a row error;
    ``prefix``: the path of the value that was decoded (``contact_points[1]``)."""
    match = _AT.match(str(exc))
    assert match is not None
    message, path = match["msg"], (match["path"] or "").lstrip(".")
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    if not isinstance(exc, msgspec.ValidationError):
        code = "invalid_encoding" if "UTF-8" in message else "malformed_json"
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


Source = Iterator[tuple[int, "Row | RowError"]]
"""(line, the decoded row or why it was rejected). The warnings about the fields dropped
from a row are added to the list the source was given, before the row is yielded."""
Renamer = Callable[[RowError, dict[str, Any]], RowError]

_NDJSON = msgspec.json.Decoder(Row)
_JSON_NUL = b"\\u0000"
"""A NUL in a JSON string (a raw NUL byte is malformed JSON: the slow path names it)."""
_BATCH_BYTES = 1 << 20


def _ndjson_rows(path: str, options: ReadOptions, warnings: list[RowError]) -> Source:
    decode, encoding = _NDJSON.decode, options.encoding
    transcode = encoding != "utf-8"
    line_no = 0
    with open(path, "rb") as f:
        while lines := f.readlines(_BATCH_BYTES):
            # One search a batch, not one a line: NULs are rare and this is the hot path.
            suspect = transcode or _JSON_NUL in b"".join(lines)
            for raw in lines:
                line_no += 1
                if not raw.strip():
                    continue
                try:
                    if transcode:
                        raw = raw.decode(encoding).encode()
                    if suspect and _JSON_NUL in raw:
                        yield line_no, _json_slow_path(line_no, raw, warnings)
                    else:
                        yield line_no, decode(raw)
                except UnicodeDecodeError:
                    yield line_no, _not_text(line_no, None, encoding)
                except msgspec.MsgspecError:
                    yield line_no, _json_slow_path(line_no, raw, warnings)


def _json_slow_path(line: int, raw: bytes, warnings: list[RowError]) -> Row | RowError:
    """An NDJSON line that failed to decode, or may hold a NUL: find the fields at fault."""
    try:
        record = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        if b"\x00" in raw:
            return RowError(line, None, "nul_character", "the line contains a NUL byte")
        return _decode_error(line, exc)
    if not isinstance(record, dict):
        record = {"type": record}  # reported by the conversion as a bad type
    return _salvage(line, record, True, _same, warnings)


def _same(error: RowError, record: dict[str, Any]) -> RowError:
    return error


def _nul_field(value: Any, path: str = "") -> str | None:
    """The path of the first string in ``value`` (or object key) that holds a NUL (``""``:
    a key of ``value`` itself), or ``None``."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Iterable[tuple[str, Any]]
    if isinstance(value, dict):
        if any("\x00" in str(k) for k in value):
            return path
        items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for item_path, item in items:
        found = _nul_field(item, item_path)
        if found:
            return found
    return None


_ITEMS: tuple[tuple[str, Any], ...] = (("contact_points", ContactRow), ("tags", Tag))


def _salvage(line: int, record: dict[str, Any], strict: bool, rename: Renamer,
             warnings: list[RowError]) -> Row | RowError:
    """Convert a row whose fast decoding failed, dropping each invalid optional field (and
    each invalid item of an optional list or object) with a warning added to ``warnings``;
    a NUL anywhere, or an invalid required field, rejects the row (and adds none)."""
    nul = _nul_field(record)
    if nul is not None:
        return rename(RowError(line, nul or None, "nul_character",
                               "the value contains a NUL character"), record)
    optional = OPTIONAL_FIELDS.get(record.get("type"), frozenset())  # type: ignore[arg-type]
    dropped = _drop_bad_items(line, record, strict, rename) if optional else []
    while True:
        try:
            row: Row = msgspec.convert(record, Row, strict=strict)
        except msgspec.ValidationError as exc:
            error = _decode_error(line, exc)
            name = (error.field or "").split(".", 1)[0].split("[", 1)[0]
            if name not in optional or name not in record:
                return rename(error, record)
            dropped.append(_warning(rename(error, record)))
            del record[name]
        else:
            warnings += dropped
            return row


def _drop_bad_items(line: int, record: dict[str, Any], strict: bool,
                    rename: Renamer) -> list[RowError]:
    """Take the invalid contact points, tags and attributes out of a debtor ``record``."""
    warnings: list[RowError] = []
    for name, item_type in _ITEMS:
        items = record.get(name)
        if not isinstance(items, list):
            continue
        kept = []
        for i, item in enumerate(items):
            try:
                msgspec.convert(item, item_type, strict=strict)
            except msgspec.ValidationError as exc:
                warnings.append(_warning(rename(_decode_error(line, exc, f"{name}[{i}]"),
                                                record)))
            else:
                kept.append(item)
        record[name] = kept
    attributes = record.get("attributes")
    if isinstance(attributes, dict):
        for key, value in list(attributes.items()):
            try:
                msgspec.convert(value, AttributeValue, strict=strict)
            except msgspec.ValidationError as exc:
                warnings.append(_warning(_decode_error(line, exc, f"attributes.{key}")))
                del attributes[key]
    return warnings


def _warning(error: RowError) -> RowError:
    return RowError(error.line, error.field, error.code, f"{error.reason}: ignored",
                    "warning")


def _not_text(line: int, column: str | None, encoding: str) -> RowError:
    return RowError(line, column, "invalid_encoding", f"not valid {encoding} text "
                    "(give the file's encoding as the encoding parameter)")


def check_csv_header(header: list[str], delimiter: str = ",") -> None:
    """Raise :class:`FileError` unless the header names a ``type`` column and known columns
    (names as :func:`column_name` makes them)."""
    if "type" not in header:
        raise FileError(f"the CSV header has no 'type' column (read with cells separated "
                        f"by {delimiter!r})")
    unknown = [c for c in header if c not in CSV_COLUMNS and not c.startswith(ATTRIBUTE_PREFIX)]
    if unknown:
        raise FileError(f"unknown CSV column {unknown[0]!r}")


_PLAIN, _CONTACT, _TAGS, _ATTRIBUTE = range(4)


def _column_kinds(header: list[str]) -> list[tuple[str, int]]:
    """Each column's record key and how its cells go into a record."""
    kinds = []
    for name in header:
        if name in CONTACT_COLUMNS:
            kinds.append((name, _CONTACT))
        elif name == "tags":
            kinds.append((name, _TAGS))
        elif name.startswith(ATTRIBUTE_PREFIX):
            kinds.append((name[len(ATTRIBUTE_PREFIX):], _ATTRIBUTE))
        else:
            kinds.append((name, _PLAIN))
    return kinds


def _csv_record(columns: list[tuple[str, int]], values: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    contacts: list[dict[str, str]] = []
    for (name, kind), value in zip(columns, values, strict=False):
        if value == "":
            continue
        if kind == _PLAIN:
            record[name] = value
        elif kind == _CONTACT:
            contacts.append({"kind": name, "value": value})
        elif kind == _TAGS:
            record["tags"] = [t.strip() for t in value.split(";") if t.strip()]
        else:
            record.setdefault("attributes", {})[name] = value
    if contacts:
        record["contact_points"] = contacts
    return record


_NOT_TEXT = re.compile("[\x00\udc80-\udcff]")
"""A NUL, or a byte the encoding could not decode (``surrogateescape`` makes it a lone
surrogate, which no valid text holds)."""


def _csv_rows(path: str, options: ReadOptions, warnings: list[RowError]) -> Source:
    with open(path, newline="", encoding=_codec(options.encoding),
              errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter=options.delimiter)
        header = [column_name(h) for h in next(reader, [])]
        check_csv_header(header, options.delimiter)
        columns = _column_kinds(header)
        not_text = _NOT_TEXT.search
        start = reader.line_num + 1
        try:
            for values in reader:
                line_no, start = start, reader.line_num + 1
                if not any(values):
                    continue
                if len(values) > len(header):
                    yield line_no, RowError(line_no, None, "too_many_columns",
                                            f"{len(values)} cells for {len(header)} columns")
                    continue
                if not_text("".join(values)):
                    yield line_no, _bad_cell(line_no, header, values, options.encoding)
                    continue
                record = _csv_record(columns, values)
                try:
                    yield line_no, msgspec.convert(record, Row, strict=False)
                except msgspec.ValidationError:
                    yield line_no, _salvage(line_no, record, False, _csv_error, warnings)
        except csv.Error as exc:  # a cell past csv.field_size_limit(): an unclosed quote?
            raise FileError(f"line {start}: {exc} (is a quote left open?)") from exc


def _bad_cell(line: int, header: list[str], values: list[str], encoding: str) -> RowError:
    """The row error for the first cell with a NUL or bytes that are not text."""
    for column, value in zip(header, values, strict=False):
        if "\x00" in value:
            return RowError(line, column, "nul_character", "the value contains a NUL character")
        if _NOT_TEXT.search(value):
            return _not_text(line, column, encoding)
    raise AssertionError("no bad cell")  # pragma: no cover


def _csv_error(error: RowError, record: dict[str, Any]) -> RowError:
    """Name the CSV column (``phone``, ``tags``) rather than the path (``contact_points[0]``,
    ``tags[1]``)."""
    match = re.match(r"(contact_points|tags)\[(\d+)\]", error.field or "")
    if match and match[1] == "tags":
        return RowError(error.line, "tags", error.code, error.reason, error.severity)
    if match and "contact_points" in record:
        column = record["contact_points"][int(match[2])]["kind"]
        return RowError(error.line, column, error.code, error.reason, error.severity)
    return error


# --- rules -------------------------------------------------------------------------------

_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


_COMMA_DECIMAL = re.compile(r"^-?(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)(?:,[0-9]+)?$")


def comma_decimal(value: str, param: str) -> str:
    """``1.234,56`` (a decimal comma, optional ``.`` between thousands) as ``1234.56``."""
    if not _COMMA_DECIMAL.match(value):
        raise Invalid(f"{value!r} is not a decimal number with a decimal comma (like 1.234,56)",
                      code="invalid_amount", param=param)
    return value.replace(".", "").replace(",", ".")


def minor(value: str, currency: str, param: str, decimal_mark: str = ".") -> int:
    """An exact amount in minor units; the rules and messages of :func:`money.to_minor`.

    A plain non-negative amount within the currency's precision (nearly every row) is
    converted with integer arithmetic; anything else goes through :func:`money.to_minor`,
    which accepts or refuses it with the reason. ``decimal_mark`` ``,``: the amount is
    written as :func:`comma_decimal` reads it.
    """
    if decimal_mark != ".":
        value = comma_decimal(value, param)
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


def _placed(line: int, row: DebtorRow,
            warnings: list[RowError]) -> tuple[str, str | None, str]:
    """Country (required), subdivision and time zone, once :func:`_place` refused them: an
    invalid subdivision or time zone is dropped with a warning (the time zone then follows
    from the country)."""
    subdivision, tz = row.subdivision, row.timezone
    while True:
        try:
            return _place(row.country, subdivision, tz)
        except Invalid as exc:
            if exc.param == "subdivision" and subdivision is not None:
                subdivision = None
            elif exc.param == "timezone" and tz is not None:
                tz = None
            else:
                raise
            warnings.append(_warning(RowError(line, exc.param, exc.code, exc.detail)))


def _add_debtor(chunk: Chunk, line: int, row: DebtorRow, warnings: list[RowError],
                csv_names: bool) -> None:
    validation.name(row.name)
    try:
        country, subdivision, tz = _place(row.country, row.subdivision, row.timezone)
    except Invalid:
        country, subdivision, tz = _placed(line, row, warnings)
    seal = pii_cipher().seal  # staged sealed, as the tables hold them (models.stage_debtors)
    contacts: dict[tuple[str, str], tuple[Any, ...]] = {}
    for i, cp in enumerate(row.contact_points):
        param = cp.kind if csv_names else f"contact_points[{i}].value"
        try:
            value = validation.contact_value(cp.kind, cp.value, country, param)
        except Invalid as exc:
            warnings.append(_warning(RowError(line, param, exc.code, exc.detail)))
            continue
        contacts[(cp.kind, value)] = (
            row.external_ref, cp.kind, seal(value, "contact_points.value"), cp.label,
            cp.consent,
            msgspec.json.encode(sorted(set(cp.opted_out_channels))).decode(), cp.origin,
            cp.preferred)
    national_id = None if row.national_id is None else seal(row.national_id,
                                                            "debtors.national_id")
    chunk.debtors[row.external_ref] = (
        line, row.external_ref, row.kind, seal(row.name, "debtors.name"), national_id,
        country, subdivision, tz, row.zone, row.risk_score,
        msgspec.json.encode(row.attributes, order="sorted").decode())
    chunk.tags[row.external_ref] = sorted(set(row.tags))
    chunk.contacts[row.external_ref] = list(contacts.values())


def _add_obligation(chunk: Chunk, line: int, row: ObligationRow, warnings: list[RowError],
                    mark: str) -> None:
    currency = _currency(row.currency)
    original = minor(row.original_amount, currency, "original_amount", mark)
    outstanding = (original if row.outstanding_amount is None
                   else minor(row.outstanding_amount, currency, "outstanding_amount", mark))
    if outstanding > original:
        raise Invalid("outstanding_amount cannot exceed original_amount",
                      code="outstanding_exceeds_original", param="outstanding_amount")
    issued = row.issue_date
    if issued is not None and issued > row.due_date:
        warnings.append(RowError(line, "issue_date", "issue_after_due",
                                 "issue_date is after due_date: ignored", "warning"))
        issued = None
    # 'paid' is derived from allocations, as through the API: load it as open.
    status = "open" if row.status == "paid" else row.status
    chunk.obligations[row.external_ref] = (
        line, row.external_ref, row.debtor_external_ref, row.portfolio_code, row.kind,
        row.product, currency, original, original - outstanding,
        issued.isoformat() if issued else None, row.due_date.isoformat(), status)


def _add_payment(chunk: Chunk, line: int, row: PaymentRow, mark: str) -> None:
    currency = _currency(row.currency)
    amount = minor(row.amount, currency, "amount", mark)
    if amount <= 0:
        raise Invalid("amount must be positive", code="non_positive_amount", param="amount")
    chunk.payments[row.external_ref] = (
        line, row.external_ref, row.debtor_external_ref, currency, amount,
        row.paid_on.isoformat(), row.method, row.reference)


def _add(chunk: Chunk, line: int, row: Row, warnings: list[RowError], csv_names: bool,
         mark: str) -> None:
    """Validate ``row`` into ``chunk``, adding the warnings of fields it drops to
    ``warnings``; raises :class:`Invalid` (adding nothing) when the row is rejected."""
    if isinstance(row, DebtorRow):
        _add_debtor(chunk, line, row, warnings, csv_names)
    elif isinstance(row, ObligationRow):
        _add_obligation(chunk, line, row, warnings, mark)
    else:
        _add_payment(chunk, line, row, mark)


def chunks(path: str, fmt: str, chunk_rows: int = CHUNK_ROWS,
           options: ReadOptions = ReadOptions()) -> Iterator[Chunk]:
    """Validated chunks of at most ``chunk_rows`` rows; never holds more of the file.

    A chunk's ``warnings`` are those of the rows it kept."""
    pending: list[RowError] = []  # the warnings of the row at hand
    source = (_ndjson_rows if fmt == "ndjson" else _csv_rows)(path, options, pending)
    csv_names = fmt == "csv"
    mark = options.decimal_mark if csv_names else "."
    chunk = Chunk()
    for line, item in source:
        chunk.rows += 1
        chunk.last_line = line
        if isinstance(item, RowError):
            chunk.errors.append(item)
        else:
            try:
                _add(chunk, line, item, pending, csv_names, mark)
            except Invalid as exc:
                chunk.errors.append(RowError(line, exc.param, exc.code, exc.detail))
                pending.clear()
            if pending:
                chunk.warnings.extend(pending)
                pending.clear()
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


def add_record(chunk: Chunk, line: int, record: dict[str, Any]) -> None:
    """Validate one row given as an object (``type`` ``debtor``, ``obligation`` or
    ``payment``, the NDJSON fields) into ``chunk`` exactly as a file's line is: a rejected
    row becomes one of ``chunk.errors``, a dropped optional field one of its warnings. The
    ERP sync (:mod:`cartera.erpsync`) builds its pages' chunks with it."""
    chunk.rows += 1
    chunk.last_line = line
    warnings: list[RowError] = []
    try:
        row: Row = msgspec.convert(record, Row)
    except msgspec.ValidationError:
        # What a file's line gets: bad optional fields dropped with warnings, else rejected.
        salvaged = _json_slow_path(line, msgspec.json.encode(record), warnings)
        if isinstance(salvaged, RowError):
            chunk.errors.append(salvaged)
            return
        row = salvaged
    try:
        _add(chunk, line, row, warnings, False, ".")
    except Invalid as exc:
        chunk.errors.append(RowError(line, exc.param, exc.code, exc.detail))
        return
    chunk.warnings.extend(warnings)
