"""Field rules shared by the API and bulk imports; each raises :class:`Invalid` naming the field."""

from __future__ import annotations

import re

import phonenumbers

from cartera import geo
from cartera.errors import Invalid

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SUBDIVISION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")


def name(value: str, param: str = "name") -> str:
    """A name with at least one visible character (messages greet debtors by it)."""
    if not value.strip():
        raise Invalid("the name is blank", code="blank_name", param=param)
    return value


def country(value: str, param: str = "country") -> str:
    value = value.upper()
    if not geo.is_country(value):
        raise Invalid(f"{value!r} is not an ISO 3166-1 alpha-2 country", code="invalid_country",
                      param=param)
    return value


def subdivision(value: str | None, country_code: str, param: str = "subdivision") -> str | None:
    if value is None:
        return None
    value = value.upper()
    if not _SUBDIVISION.match(value) or not value.startswith(country_code + "-"):
        raise Invalid(f"{value!r} is not an ISO 3166-2 subdivision of {country_code}",
                      code="invalid_subdivision", param=param)
    return value


def timezone(value: str | None, country_code: str, subdivision_code: str | None,
             param: str = "timezone") -> str:
    if value is None:
        return geo.default_timezone(country_code, subdivision_code)
    if not geo.is_timezone(value):
        raise Invalid(f"{value!r} is not an IANA time zone", code="invalid_timezone", param=param)
    return value


def phone(value: str, country_code: str, param: str = "value") -> str:
    """Normalise to E.164; national numbers are read in the debtor's country."""
    try:
        number = phonenumbers.parse(value, country_code)
    except phonenumbers.NumberParseException:
        raise Invalid(f"{value!r} is not a phone number", code="invalid_phone",
                      param=param) from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid(f"{value!r} is not a valid phone number", code="invalid_phone", param=param)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(value: str, param: str = "value") -> str:
    value = value.strip()
    if not _EMAIL.match(value) or len(value) > 320:
        raise Invalid(f"{value!r} is not an email address", code="invalid_email", param=param)
    return value


def contact_value(kind: str, value: str, country_code: str, param: str = "value") -> str:
    if kind in ("phone", "whatsapp"):
        return phone(value, country_code, param)
    if kind == "email":
        return email(value, param)
    if not value.strip():
        raise Invalid("an address must not be empty", code="invalid_address", param=param)
    return value.strip()
