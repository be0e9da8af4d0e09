"""Annotated scalar types shared by the API schemas (they carry OpenAPI constraints)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Amount = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{1,15}(\.[0-9]{1,4})?$",
        description="Exact decimal amount as a string, within the currency's precision.",
        examples=["1250.50"],
    ),
]
Currency = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["PEN"])
]
CountryCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2.", examples=["PE"])
]
ExternalRef = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=128, description="The creditor's own identifier.",
                 examples=["CLI-000123"]),
]
Instant = Annotated[datetime, msgspec.Meta(
    tz=True, description="An instant with its UTC offset (a naive time is refused).")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="An object id.")]
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
# Free text bounded by its column, so an over-long value is a 422, never a database error.
Text16 = Annotated[str, msgspec.Meta(max_length=16)]
Text32 = Annotated[str, msgspec.Meta(max_length=32)]
Text64 = Annotated[str, msgspec.Meta(max_length=64)]
Text128 = Annotated[str, msgspec.Meta(max_length=128)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
Text320 = Annotated[str, msgspec.Meta(max_length=320)]
Text500 = Annotated[str, msgspec.Meta(max_length=500)]
Text2000 = Annotated[str, msgspec.Meta(max_length=2000)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ShortName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\w:.\-]+$")]
AttributeValue = str | int | bool | None

ObligationKind = Literal[
    "invoice", "installment", "loan", "credit_card_balance", "fee", "credit_note", "debit_note"
]
ObligationStatus = Literal["open", "paid", "disputed", "written_off", "cancelled"]
DebtorKind = Literal["person", "company"]
ContactKind = Literal["phone", "email", "whatsapp", "address"]
Consent = Literal["granted", "unknown", "revoked"]
ContactOrigin = Literal["debtor_provided", "found"]
RelatedRole = Literal["guarantor", "co_debtor", "reference"]
Channel = Literal["sms", "whatsapp", "email", "voice", "letter", "visit"]
