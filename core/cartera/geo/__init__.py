"""Countries, subdivisions and IANA time zones (from the tzdata tables)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, available_timezones

# A debtor's time zone when none is given: by subdivision (ISO 3166-2) where a country
# spans several zones, else the zone where most of the country's people live.
_BY_SUBDIVISION = {
    "MX-BCN": "America/Tijuana", "MX-BCS": "America/Mazatlan", "MX-SON": "America/Hermosillo",
    "MX-SIN": "America/Mazatlan", "MX-NAY": "America/Mazatlan", "MX-CHH": "America/Chihuahua",
    "MX-ROO": "America/Cancun",
    "CL-MA": "America/Punta_Arenas",
    "BR-AM": "America/Manaus", "BR-RR": "America/Boa_Vista", "BR-RO": "America/Porto_Velho",
    "BR-AC": "America/Rio_Branco", "BR-MT": "America/Cuiaba", "BR-MS": "America/Campo_Grande",
    "BR-PA": "America/Belem", "BR-AP": "America/Belem", "BR-TO": "America/Araguaina",
    "BR-BA": "America/Bahia", "BR-PE": "America/Recife", "BR-CE": "America/Fortaleza",
    "BR-AL": "America/Maceio", "BR-SE": "America/Maceio",
    "AR-MZ": "America/Argentina/Mendoza", "AR-SA": "America/Argentina/Salta",
    "AR-X": "America/Argentina/Cordoba", "AR-T": "America/Argentina/Tucuman",
}
_BY_COUNTRY = {
    "MX": "America/Mexico_City", "BR": "America/Sao_Paulo", "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago", "EC": "America/Guayaquil", "US": "America/New_York",
    "ES": "Europe/Madrid", "CO": "America/Bogota", "PE": "America/Lima",
}


@lru_cache(maxsize=1)
def _tab() -> tuple[frozenset[str], dict[str, str]]:
    base = resources.files("tzdata") / "zoneinfo"
    countries = frozenset(
        line.split("\t")[0]
        for line in (base / "iso3166.tab").read_text().splitlines()
        if line and not line.startswith("#")
    )
    first_zone: dict[str, str] = {}
    for line in (base / "zone.tab").read_text().splitlines():
        if line and not line.startswith("#"):
            code, _coords, zone, *_ = line.split("\t")
            first_zone.setdefault(code, zone)
    return countries, first_zone


def is_country(code: str) -> bool:
    return code in _tab()[0]


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_timezone(name: str) -> bool:
    return name in _zones()


def default_timezone(country: str, subdivision: str | None = None) -> str:
    """The IANA zone for a place: subdivision first, then the country's main zone."""
    if subdivision and subdivision in _BY_SUBDIVISION:
        return _BY_SUBDIVISION[subdivision]
    return _BY_COUNTRY.get(country) or _tab()[1].get(country) or "UTC"


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
