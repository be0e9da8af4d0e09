"""National identifiers in each country's real shape, check digits included."""

from __future__ import annotations

import random
import unicodedata
from datetime import date

_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
_CURP_STATES = {"MX-CMX": "DF", "MX-JAL": "JC", "MX-NLE": "NL"}
_VOWELS = "AEIOU"


def ascii_upper(text: str) -> str:
    """``"Ñúñez"`` -> ``"NUNEZ"``: accents stripped, letters only, upper case."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalpha()).upper()


def ruc_pe(rng: random.Random, prefix: str = "20") -> str:
    """Peruvian RUC: 11 digits, the last a mod-11 check digit (SUNAT weights)."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(8))
    total = sum(int(d) * w for d, w in zip(body, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2), strict=True))
    check = 11 - total % 11
    return body + str({10: 0, 11: 1}.get(check, check))


def dni_pe(rng: random.Random) -> str:
    return str(rng.randrange(10_000_000, 79_999_999)).zfill(8)


def rut_cl(number: int) -> str:
    """Chilean RUT ``12.345.678-5``: mod-11 check digit over the weights 2..7 from the right."""
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(str(number))))
    check = 11 - total % 11
    dv = {11: "0", 10: "K"}.get(check, str(check))
    return f"{number:,}".replace(",", ".") + "-" + dv


def nit_co(rng: random.Random) -> str:
    """Colombian NIT ``900123456-7`` with the DIAN check digit."""
    body = "9" + "".join(str(rng.randrange(10)) for _ in range(8))
    weights = (3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71)
    total = sum(int(d) * w for d, w in zip(reversed(body), weights, strict=False))
    r = total % 11
    return f"{body}-{r if r in (0, 1) else 11 - r}"


def cedula_co(rng: random.Random, birth: date) -> str:
    """Cédula de ciudadanía: 8 digits for older people, 10 (``10…``) for the younger."""
    if birth.year >= 1985:
        return "10" + str(rng.randrange(0, 99_999_999)).zfill(8)
    return str(rng.randrange(10_000_000, 99_999_999))


def _first_internal(word: str, vowels: bool) -> str:
    for c in word[1:]:
        if (c in _VOWELS) == vowels:
            return c
    return "X"


def curp_mx(rng: random.Random, first: str, surname1: str, surname2: str, birth: date,
            sex: str, subdivision: str) -> str:
    """CURP: 18 characters, the last a check digit (RENAPO algorithm)."""
    names = first.split()
    given = ascii_upper(names[1] if len(names) > 1 and names[0] in ("José", "María") else
                        names[0])
    s1, s2 = ascii_upper(surname1), ascii_upper(surname2)
    head = s1[0] + _first_internal(s1, True) + s2[0] + given[0]
    body = (head + birth.strftime("%y%m%d") + ("M" if sex == "F" else "H")
            + _CURP_STATES.get(subdivision, "DF")
            + _first_internal(s1, False) + _first_internal(s2, False)
            + _first_internal(given, False)
            + ("0" if birth.year < 2000 else "A"))
    total = sum(_CURP_ALPHABET.index(c) * (18 - i) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def rfc_mx_person(curp: str, rng: random.Random) -> str:
    """RFC of a person: the CURP's first 10 characters and a 3-character homoclave."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ123456789"
    return curp[:10] + "".join(rng.choice(alphabet) for _ in range(2)) + str(rng.randrange(10))


def rfc_mx_company(rng: random.Random, name: str, founded: date) -> str:
    """RFC of a company: 3 letters from the name, foundation date, homoclave."""
    letters = "".join(w[0] for w in (ascii_upper(x) for x in name.split()) if w)[:3]
    letters = (letters + "XXX")[:3]
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ123456789"
    return (letters + founded.strftime("%y%m%d") + "".join(rng.choice(alphabet) for _ in range(2))
            + str(rng.randrange(10)))
