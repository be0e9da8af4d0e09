"""SMS encoding and segment count (3GPP TS 23.038): GSM-7 when every character is in the
default alphabet or its extension table (which costs two septets), else UCS-2."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsAnalysis:
    encoding: str
    characters: int
    units: int
    segments: int
    non_gsm_characters: list[str]


def analyse(text: str) -> SmsAnalysis:
    """Encoding, length in encoding units and the number of concatenated segments."""
    outside = sorted({c for c in text if c not in _GSM7 and c not in _GSM7_EXTENSION})
    if not outside:
        units = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        # UTF-16 code units: characters outside the BMP (emoji) take two.
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 0 if units == 0 else 1 if units <= single else -(-units // multi)
    return SmsAnalysis(encoding, len(text), units, segments, outside)


def plain_spaces(text: str) -> str:
    """``text`` with Unicode spaces (babel's no-break space in "S/\u00a01,250.50") made
    ASCII when that lets it travel as GSM-7, where a no-break space would force UCS-2
    (70 characters a segment instead of 160). Text that needs UCS-2 anyway is unchanged."""
    plain = "".join(" " if c != " " and unicodedata.category(c) == "Zs" else c for c in text)
    return plain if analyse(plain).encoding == "GSM-7" else text
