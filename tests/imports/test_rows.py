"""Row parsing and staging text: the fast paths agree with the reference rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartera import money
from cartera.errors import Invalid
from cartera.imports.pipeline import copy_text
from cartera.imports.rows import chunks, minor


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


def test_a_blank_name_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "debtors.ndjson"
    path.write_text(
        '{"type": "debtor", "external_ref": "D1", "name": "   ", "country": "PE"}\n'
        '{"type": "debtor", "external_ref": "D2", "name": "Ana", "country": "PE"}\n')
    [chunk] = list(chunks(str(path), "ndjson"))
    assert list(chunk.debtors) == ["D2"]
    assert [(e.line, e.field, e.code) for e in chunk.errors] == [(1, "name", "blank_name")]
