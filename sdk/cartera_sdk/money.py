"""Exact money: a :class:`Money` is a :class:`~decimal.Decimal` amount plus an ISO 4217 code.

Amounts travel as JSON *strings* (msgspec encodes ``Decimal`` as a string), never as floats.
An amount may not carry more decimal places than its currency allows (``CLP`` and ``PYG``
have none), and arithmetic between different currencies raises instead of converting.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Self

import msgspec

__all__ = ["PRICE_DECIMALS", "CurrencyMismatchError", "Money", "Price", "minor_units"]

_CODE = re.compile(r"^[A-Z]{3}$")

#: ISO 4217 minor units for every currency whose exponent is not 2 (the default).
_MINOR_UNITS: dict[str, int] = {
    # zero decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals (units of account)
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def minor_units(currency: str) -> int:
    """Return the ISO 4217 exponent of ``currency`` (2 unless listed otherwise)."""
    return _MINOR_UNITS.get(currency, 2)


class CurrencyMismatchError(ValueError):
    """Raised when arithmetic or comparison mixes two currencies."""


class Money(msgspec.Struct, frozen=True):
    """An exact amount of one currency.

    ``amount`` is a ``Decimal`` (JSON string on the wire); ``currency`` an upper-case ISO 4217
    code. Construction and decoding reject non-finite amounts, malformed codes and amounts
    with more decimals than the currency allows.
    """

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not _CODE.match(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")
        if not self.amount.is_finite():
            raise ValueError("amount must be finite")
        exponent = self.amount.as_tuple().exponent
        assert isinstance(exponent, int)  # finite decimals have an int exponent
        if -exponent > minor_units(self.currency) and self.amount != self.amount.quantize(
            Decimal(1).scaleb(-minor_units(self.currency))
        ):
            raise ValueError(
                f"{self.currency} allows {minor_units(self.currency)} decimals, got {self.amount}"
            )

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Self:
        """Build from a string, int or Decimal (floats are refused: they are inexact)."""
        if isinstance(amount, float):  # pragma: no cover - guarded by typing too
            raise TypeError("floats are inexact; pass a str or Decimal")
        try:
            value = Decimal(amount)
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {amount!r}") from exc
        return cls(value, currency)

    @classmethod
    def from_minor(cls, units: int, currency: str) -> Self:
        """Build from an integer count of minor units (cents, centavos...)."""
        return cls(Decimal(units).scaleb(-minor_units(currency)), currency)

    def to_minor(self) -> int:
        """Return the amount as an integer count of minor units."""
        return int(self.amount.scaleb(minor_units(self.currency)))

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def is_zero(self) -> bool:
        """True when the amount is zero."""
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


#: The most decimal places a :class:`Price` keeps (provider prices such as 0.033325 EUR).
PRICE_DECIMALS = 6


class Price(msgspec.Struct, frozen=True):
    """What a provider charged for a message, at the provider's precision.

    Kept apart from :class:`Money` (debts and payments, never finer than the currency's
    minor unit): an SMS at ``0.0333 EUR`` is a valid ``Price`` and an invalid ``Money``.
    ``amount`` is a ``Decimal`` (a JSON string on the wire) of at most
    :data:`PRICE_DECIMALS` decimals, never negative; ``currency`` an ISO 4217 code. Prices
    add up within one currency; nothing converts them into ``Money`` implicitly.

    .. versionadded:: 1.0
    """

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not _CODE.match(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")
        if not self.amount.is_finite() or self.amount < 0:
            raise ValueError("a price must be a finite amount of zero or more")
        exponent = self.amount.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > PRICE_DECIMALS and self.amount != self.amount.quantize(
            Decimal(1).scaleb(-PRICE_DECIMALS)
        ):
            raise ValueError(f"a price keeps at most {PRICE_DECIMALS} decimals, got {self.amount}")

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Self:
        """Build from a string, int or Decimal as the provider reported it (no floats)."""
        if isinstance(amount, float):  # pragma: no cover - guarded by typing too
            raise TypeError("floats are inexact; pass the provider's string")
        try:
            value = Decimal(amount)
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {amount!r}") from exc
        return cls(value, currency)

    def __add__(self, other: Price) -> Price:
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"{self.currency} vs {other.currency}")
        return Price(self.amount + other.amount, self.currency)

    def to_money(self) -> Money | None:
        """The same amount as :class:`Money` when it is a whole number of minor units,
        else ``None`` (never rounds)."""
        try:
            return Money(self.amount, self.currency)
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
