"""Row parsing and staging text: the fast paths agree with the reference rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartera import money
from cartera.crypto import PiiCipher, pii_cipher
from cartera.errors import Invalid
from cartera.imports.pipeline import copy_text
from cartera.imports.rows import (
    FileError,
    ReadOptions,
    chunks,
    comma_decimal,
    detect,
    detect_delimiter,
    detect_encoding,
    minor,
)


def _reference(value: str, currency: str) -> int | str:
    try:
        return money.to_minor(value, currency)
    except money.MoneyError as exc:
        return exc.code


def _fast(value: str, currency: str) -> int | str:
    try:
        return minor(value, currency, "amount")
    except Invalid as exc:
        return exc.code


@pytest.mark.parametrize(("value", "currency", "expected"), [
    ("1250.50", "PEN", 125050), ("12.5", "PEN", 1250), ("12.500", "PEN", 1250),
    ("0", "PEN", 0), ("7", "USD", 700), ("1000", "CLP", 1000), ("1000.00", "CLP", 1000),
    ("12.505", "PEN", "too_many_decimals"), ("0.5", "CLP", "too_many_decimals"),
    ("-3.00", "PEN", "negative_amount"), ("1.2345", "BHD", "too_many_decimals"),
    ("1.234", "BHD", 1234),
])
def test_minor_units(value: str, currency: str, expected: int | str) -> None:
    assert _fast(value, currency) == expected == _reference(value, currency)


@given(whole=st.integers(min_value=-10**12, max_value=10**15),
       fraction=st.text(alphabet="0123456789", max_size=6),
       currency=st.sampled_from(["PEN", "CLP", "BHD", "COP", "USD"]))
def test_minor_units_agree_with_money_to_minor(whole: int, fraction: str, currency: str) -> None:
    value = f"{whole}.{fraction}" if fraction else str(whole)
    assert _fast(value, currency) == _reference(value, currency)


def test_copy_text_escapes_and_marks_nulls() -> None:
    rows = [("a\tb", None, 12, True, "back\\slash\nnew\rline"), ("plain", "x", 0, False, "")]
    assert copy_text(rows, 7).decode() == (
        "7\ta\\tb\t\\N\t12\tt\tback\\\\slash\\nnew\\rline\n"
        "7\tplain\tx\t0\tf\t\n")


@pytest.mark.parametrize(("value", "expected"), [
    ("1.234,56", "1234.56"), ("1234,56", "1234.56"), ("7", "7"), ("1.234.567", "1234567"),
    ("-3,5", "-3.5"), ("12.34", "invalid_amount"), ("1,2,3", "invalid_amount"),
    ("1.23,4", "invalid_amount"), ("", "invalid_amount"),
])
def test_comma_decimals(value: str, expected: str) -> None:
    try:
        assert comma_decimal(value, "amount") == expected
    except Invalid as exc:
        assert (exc.code, exc.param) == (expected, "amount")


@pytest.mark.parametrize(("line", "delimiter"), [
    ("type,external_ref,name\n", ","), ("type;external_ref;name\n", ";"),
    ("type\texternal_ref\n", "\t"), ("type|a|b\n", "|"), ("type\n", ","),
    ("type;name,with,commas;x;y\n", ";"),
])
def test_delimiter_detection(line: str, delimiter: str) -> None:
    assert detect_delimiter(line) == delimiter


def test_encoding_detection_reads_a_bounded_lookahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes("type\nJosé\n".encode() + "Núñez\n".encode("cp1252"))
    assert detect_encoding(str(path)) == "cp1252"
    monkeypatch.setattr("cartera.imports.rows.LOOKAHEAD_BYTES", 9)  # cuts 'é' in two
    assert detect_encoding(str(path)) == "utf-8"
    assert detect(str(path), "csv") == ReadOptions("utf-8", ",", ".")


def test_nul_characters_are_row_errors_at_their_field(tmp_path: Path) -> None:
    path = tmp_path / "f.ndjson"
    path.write_bytes(
        b'{"type":"debtor","external_ref":"C-1","name":"A","country":"PE",'
        b'"contact_points":[{"kind":"email","value":"a\\u0000@x.pe"}]}\n'
        b'{"type":"debtor","external_ref":"C-2","name":"B","country":"PE","x\\u0000":1}\n'
        b'{"type":"debtor","external_ref":"C-3","name":"B\x00","country":"PE"}\n'
        b'{"type":"debtor","external_ref":"C-4","name":"\\\\u0000 is text","country":"PE"}\n')
    [chunk] = chunks(str(path), "ndjson")
    assert [(e.line, e.field, e.code) for e in chunk.errors] == [
        (1, "contact_points[0].value", "nul_character"), (2, None, "nul_character"),
        (3, None, "nul_character")]
    assert list(chunk.debtors) == ["C-4"]
    assert pii_cipher().open(chunk.debtors["C-4"][3], "debtors.name") == "\\u0000 is text"


def test_an_unclosed_quote_fails_the_file_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('type,external_ref,name,country\ndebtor,C-1,Ana,PE\ndebtor,C-2,"Bea,PE\n'
                    + "x" * 200_000 + "\n")
    with pytest.raises(FileError, match=r"^line 3: field larger than field limit"):
        list(chunks(str(path), "csv"))


def test_personal_data_is_staged_sealed(tmp_path: Path) -> None:
    """The chunk holds names, national ids and contact values sealed for the columns they go
    to (the staging tables and the set-based upserts never see them in plaintext)."""
    path = tmp_path / "f.ndjson"
    path.write_bytes(
        b'{"type":"debtor","external_ref":"C-1","name":"Ana Quispe","country":"PE",'
        b'"national_id":"45678912","contact_points":[{"kind":"email","value":"Ana@X.pe"},'
        b'{"kind":"phone","value":"987 654 321"}]}\n'
        b'{"type":"debtor","external_ref":"C-2","name":"Luis","country":"PE"}\n')
    [chunk] = chunks(str(path), "ndjson")
    cipher = pii_cipher()
    debtor = chunk.debtors["C-1"]
    assert debtor[3] == cipher.seal("Ana Quispe", "debtors.name")
    assert debtor[4] == cipher.seal("45678912", "debtors.national_id")
    assert chunk.debtors["C-2"][4] is None
    values = [row[2] for row in chunk.contacts["C-1"]]
    assert all(v.startswith(PiiCipher.MARKER) for v in values)
    assert [cipher.open(v, "contact_points.value") for v in values] == [
        "Ana@X.pe", "+51987654321"]
