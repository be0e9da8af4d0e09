"""Exact money: ISO 4217 currencies, their minor units, and decimal-string amounts.

Amounts are stored as integers in the currency's minor unit and travel over the API as
decimal strings ("1234.50"), never as floats. Precision is ISO 4217's (CLP, PYG, JPY: 0).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 active codes with their minor-unit exponent (ISO 4217 list, 2024 amendments).
# Kept inline so validation is exact and independent of CLDR, which rounds some cash digits.
_ISO4217: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AFN",
            "ALL",
            "AMD",
            "ANG",
            "AOA",
            "ARS",
            "AUD",
            "AWG",
            "AZN",
            "BAM",
            "BBD",
            "BDT",
            "BGN",
            "BMD",
            "BND",
            "BOB",
            "BRL",
            "BSD",
            "BTN",
            "BWP",
            "BYN",
            "BZD",
            "CAD",
            "CDF",
            "CHF",
            "CNY",
            "COP",
            "CRC",
            "CUP",
            "CVE",
            "CZK",
            "DKK",
            "DOP",
            "DZD",
            "EGP",
            "ERN",
            "ETB",
            "EUR",
            "FJD",
            "FKP",
            "GBP",
            "GEL",
            "GHS",
            "GIP",
            "GMD",
            "GTQ",
            "GYD",
            "HKD",
            "HNL",
            "HTG",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "IRR",
            "JMD",
            "KES",
            "KGS",
            "KHR",
            "KPW",
            "KYD",
            "KZT",
            "LAK",
            "LBP",
            "LKR",
            "LRD",
            "LSL",
            "MAD",
            "MDL",
            "MGA",
            "MKD",
            "MMK",
            "MNT",
            "MOP",
            "MRU",
            "MUR",
            "MVR",
            "MWK",
            "MXN",
            "MYR",
            "MZN",
            "NAD",
            "NGN",
            "NIO",
            "NOK",
            "NPR",
            "NZD",
            "PAB",
            "PEN",
            "PGK",
            "PHP",
            "PKR",
            "PLN",
            "QAR",
            "RON",
            "RSD",
            "RUB",
            "SAR",
            "SBD",
            "SCR",
            "SDG",
            "SEK",
            "SGD",
            "SHP",
            "SLE",
            "SOS",
            "SRD",
            "SSP",
            "STN",
            "SVC",
            "SYP",
            "SZL",
            "THB",
            "TJS",
            "TMT",
            "TOP",
            "TRY",
            "TTD",
            "TWD",
            "TZS",
            "UAH",
            "USD",
            "UYU",
            "UZS",
            "VES",
            "WST",
            "XCD",
            "YER",
            "ZAR",
            "ZMW",
            "ZWG",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}


class MoneyError(ValueError):
    """An amount or currency that cannot be accepted; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def is_currency(code: str) -> bool:
    return code in _ISO4217


def exponent(currency: str) -> int:
    """Number of decimals the currency allows; raises :class:`MoneyError` if unknown."""
    try:
        return _ISO4217[currency]
    except KeyError:
        raise MoneyError("unknown_currency", f"{currency!r} is not an ISO 4217 currency") from None


def to_minor(amount: str | Decimal | int, currency: str, *, allow_negative: bool = False) -> int:
    """Parse a decimal amount into integer minor units, refusing excess precision."""
    digits = exponent(currency)
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError("invalid_amount", f"{amount!r} is not a decimal number") from None
    if not value.is_finite():
        raise MoneyError("invalid_amount", f"{amount!r} is not a finite amount")
    if value < 0 and not allow_negative:
        raise MoneyError("negative_amount", "amount must not be negative")
    exp = value.as_tuple().exponent
    assert isinstance(exp, int)
    if -exp > digits and value != value.quantize(Decimal(1).scaleb(-digits)):
        raise MoneyError(
            "too_many_decimals",
            f"{currency} allows {digits} decimal place{'s' if digits != 1 else ''}",
        )
    return int(value.scaleb(digits))


def from_minor(minor: int, currency: str) -> str:
    """Format integer minor units as a decimal string with exactly the currency's decimals."""
    digits = exponent(currency)
    if digits == 0:
        return str(minor)
    return str(Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))
